"""Classifiers of every family: class probabilities are invariant to rotation, translation and
permutation (and to reflection unless the model reads pseudoscalars), batched equals single,
and an O(3)-invariant classifier cannot tell a mirror pair apart, while one with parity-odd
outputs can."""

import numpy as np
import pytest
import torch

from eqna.data import keys
from eqna.data.collate import collate, to_device
from eqna.data.tetris import mirrored, tetris_pieces
from eqna.models.io import build_model
from eqna.testing import default_structures, random_orthogonal

ELEMENTS = [1, 6, 8]
CLASSES = ["a", "b", "c", "d"]
SMALL = {"num_channels": 8, "radial_hidden": [16], "readout_hidden": 8, "r_max": 3.0}
VARIANTS = {
    "equivariant": ("equivariant", SMALL),
    "equivariant_c3_na": (
        "equivariant",
        {**SMALL, "correlation": 3, "neural_atoms": {"num_neural_atoms": 4, "num_heads": 2}},
    ),
    "equivariant_parity_odd": ("equivariant", {**SMALL, "parity_odd_outputs": True}),
    "equivariant_parity_odd_c3_na": (
        "equivariant",
        {
            **SMALL,
            "parity_odd_outputs": True,
            "correlation": 3,
            "neural_atoms": {"num_neural_atoms": 4, "num_heads": 2},
        },
    ),
    "cgcnn": ("cgcnn", {"num_channels": 8, "head_hidden": 8, "r_max": 3.0}),
    "flowgnn": ("flowgnn", {"num_channels": 8, "head_hidden": 8, "r_max": 3.0}),
}


def classifier(variant: str, output: str = "classification"):
    family, hparams = VARIANTS[variant]
    torch.manual_seed(0)
    hparams = {**hparams, "elements": ELEMENTS, "output": output, "classes": CLASSES}
    return build_model(family, hparams).double().eval()


def probabilities(model, structures) -> torch.Tensor:
    batch = collate([model.graph_spec.graph(a) for a in structures])
    return model(to_device(batch, "cpu", torch.float64))[keys.PROBABILITIES].detach()


def moved(atoms, rotation, rng):
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ rotation.T, scale_atoms=False)
    out.positions = atoms.positions @ rotation.T + rng.normal(scale=3.0, size=3)
    return out[rng.permutation(len(out))]


@pytest.mark.parametrize("output", ["classification", "multilabel"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_probabilities_are_invariant(variant, output):
    model = classifier(variant, output)
    structures = default_structures(ELEMENTS)[:2] + [tetris_pieces()[0]]
    reference = probabilities(model, structures)
    if output == "classification":
        torch.testing.assert_close(reference.sum(-1), torch.ones(3, dtype=torch.float64))
    assert reference.shape == (3, len(CLASSES))
    rng = np.random.default_rng(1)
    parity_odd = VARIANTS[variant][1].get("parity_odd_outputs", False)
    for proper in (True, False):
        rotation = random_orthogonal(rng, proper)
        out = probabilities(model, [moved(a, rotation, rng) for a in structures])
        if proper or not parity_odd:
            torch.testing.assert_close(out, reference, rtol=1e-10, atol=1e-12)
    singles = torch.cat([probabilities(model, [a]) for a in structures])
    torch.testing.assert_close(singles, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_mirror_images_differ_only_with_parity_odd_outputs(variant):
    """The tetris mirror pair: identical probabilities for an O(3)-invariant classifier (so at
    most 7 of the 8 pieces right), different ones for a classifier with pseudoscalars."""
    model = classifier(variant)
    chiral = tetris_pieces()[0]
    pair = probabilities(model, [chiral, mirrored(chiral)])
    gap = float((pair[0] - pair[1]).abs().max())
    if VARIANTS[variant][1].get("parity_odd_outputs", False):
        assert gap > 1e-6
    else:
        assert gap < 1e-12


def test_mirror_pair_is_the_only_one():
    """Each achiral piece's mirror image gets its own probabilities back under a pseudoscalar
    classifier (it is the same piece, rotated); the chiral pieces swap into each other."""
    model = classifier("equivariant_parity_odd")
    pieces = tetris_pieces()
    direct = probabilities(model, pieces)
    mirror = probabilities(model, [mirrored(a) for a in pieces])
    names = [a.info["shape"] for a in pieces]
    for i, name in enumerate(names):
        if name.startswith("chiral"):
            partner = names.index("chiral_2" if name == "chiral_1" else "chiral_1")
            torch.testing.assert_close(mirror[i], direct[partner], rtol=1e-10, atol=1e-12)
            assert float((mirror[i] - direct[i]).abs().max()) > 1e-6
        else:
            torch.testing.assert_close(mirror[i], direct[i], rtol=1e-10, atol=1e-12)


def test_energy_models_refuse_parity_odd_outputs():
    hparams = {**SMALL, "elements": ELEMENTS, "atomic_energies": [-1.0, -2.0, -3.0]}
    with pytest.raises(ValueError, match="parity_odd_outputs"):
        build_model("equivariant", {**hparams, "parity_odd_outputs": True})


@pytest.mark.parametrize("classes", [None, ["only"]])
def test_classifier_needs_classes(classes):
    with pytest.raises(ValueError, match="class names"):
        build_model(
            "equivariant",
            {**SMALL, "elements": ELEMENTS, "output": "classification", "classes": classes},
        )
