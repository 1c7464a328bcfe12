"""Neural atoms: the shared physics suite with the layer on, plus gates, pruning and save/load."""

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from helpers import ELEMENTS, HPARAMS

from eqna.models.io import build_model, load_model, save_model
from eqna.nn.neural_atoms import (
    NeuralAtoms,
    gate_penalty,
    k_eff_summary,
    neural_atom_layers,
)
from eqna.testing import (
    ModelTestSuite,
    default_structures,
    predict,
    rattled_molecule,
    triclinic_crystal,
)

NA = {"num_neural_atoms": 4, "num_heads": 2, "prototype_dim": 8, "reciprocal_k_max": 3.0}


def na_hparams(**neural_atoms) -> dict:
    """The small test model with a neural-atom layer after each of its two blocks."""
    return {**HPARAMS, "neural_atoms": {**NA, **neural_atoms}, "neural_atoms_after": [0, 1]}


class TestEquivariantPooling(ModelTestSuite):
    family = "equivariant"
    hparams = na_hparams(pooling="equivariant")
    local = False


class TestEquivariantPoolingLmax2(TestEquivariantPooling):
    """l = 2 channels (2e) are pooled and mixed by attention like the vectors."""

    hparams = {**na_hparams(pooling="equivariant"), "l_max": 2}


class TestInvariantPooling(TestEquivariantPooling):
    hparams = na_hparams(pooling="invariant")


class TestFixedK(TestEquivariantPooling):
    hparams = na_hparams(pooling="equivariant", learn_gates=False)


class TestEquivariantReciprocal(TestEquivariantPooling):
    """With the Ewald-like view; slabs are rejected by it, so molecule + triclinic crystal."""

    hparams = na_hparams(pooling="equivariant", reciprocal=True)

    def structures(self, elements, r_max):
        return default_structures(elements, self.seed)[:2]


class TestInvariantReciprocal(TestEquivariantReciprocal):
    hparams = na_hparams(pooling="invariant", reciprocal=True)


def _model(seed=0, **neural_atoms):
    torch.manual_seed(seed)
    return build_model("equivariant", na_hparams(**neural_atoms)).double().eval()


@pytest.mark.parametrize("reciprocal", [False, True], ids=["plain", "reciprocal"])
def test_supercell_energy_is_extensive(reciprocal):
    """Mean pooling (and 1/V in the Ewald sum): a 2x1x2 supercell has exactly 4x the energy."""
    model = _model(reciprocal=reciprocal)
    crystal = triclinic_crystal(ELEMENTS)
    small, big = predict(model, [crystal, crystal.repeat((2, 1, 2))])
    assert big["energy"] == pytest.approx(4 * small["energy"], rel=1e-11)
    np.testing.assert_allclose(big["forces"][: len(crystal)], small["forces"], atol=1e-11)
    np.testing.assert_allclose(big["stress"], small["stress"], atol=1e-12)


@pytest.mark.parametrize(
    ("hparams", "sees_rotation", "sees_translation"),
    [
        (HPARAMS, False, False),
        (na_hparams(pooling="invariant"), False, False),
        (na_hparams(pooling="equivariant"), True, False),
        (na_hparams(pooling="invariant", reciprocal=True), True, True),
        (na_hparams(pooling="equivariant", reciprocal=True), True, True),
    ],
    ids=["backbone", "invariant", "equivariant", "invariant-reciprocal", "equivariant-recip"],
)
def test_what_neural_atoms_see_beyond_the_cutoff(hparams, sees_rotation, sees_translation):
    """Molecule B 20 Å (> 4 r_max) from A, then rotated in place or moved by 3 Å.

    Pooled scalars are blind to both; equivariant pooling sees B's orientation relative to A
    (their vectors meet in the same neural atoms); the Ewald-like view sees the interatomic
    distances between A and B, hence both.
    """
    mol = rattled_molecule(ELEMENTS)
    far = mol.copy()
    far.positions += [20.0, 0.0, 0.0]
    rotated, moved = far.copy(), far.copy()
    rotated.rotate(70, "z", center="COM")
    moved.positions += [3.0, 1.0, 0.0]
    torch.manual_seed(0)
    model = build_model("equivariant", hparams).double().eval()
    outputs = predict(model, [mol + b for b in (far, rotated, moved)])
    e_ref, e_rot, e_moved = (o["energy"] for o in outputs)
    assert bool(abs(e_rot - e_ref) > 1e-8) is sees_rotation
    assert bool(abs(e_moved - e_ref) > 1e-8) is sees_translation


def test_reciprocal_view_rejects_slabs():
    slab = default_structures(ELEMENTS)[2]
    with pytest.raises(ValueError, match="periodic in all three directions or in none"):
        predict(_model(reciprocal=True), [slab])


def test_molecule_in_a_large_box_approaches_the_molecular_kernel():
    """The periodic Ewald sum tends to the shell-averaged molecular form as the box grows."""
    from eqna.data.collate import collate, to_device
    from eqna.data.graph import atoms_to_graph
    from eqna.nn.reciprocal import ReciprocalFeatures

    torch.manual_seed(0)
    features = ReciprocalFeatures(scalar_dim=3, channels=4, k_max=1.5).double()
    mol = rattled_molecule(ELEMENTS)
    mol.positions -= mol.positions.mean(axis=0)
    scalars = torch.randn(len(mol), 3, dtype=torch.float64)

    def phi(atoms):
        graph = to_device(collate([atoms_to_graph(atoms, 3.0, ELEMENTS)]), "cpu", torch.float64)
        return features(scalars, graph)

    finite = phi(mol).detach()
    errors = []
    for box in (30.0, 60.0):
        boxed = mol.copy()
        boxed.cell, boxed.pbc = np.eye(3) * box, True
        errors.append(float((phi(boxed).detach() - finite).abs().max() / finite.abs().max()))
    assert errors[1] < 0.05 and errors[1] < errors[0], errors


def _set_gates(model, values):
    layer = neural_atom_layers(model)[0]
    _set_gates_of(layer, values)
    return layer


# |E_pruned - E_full| <= PRUNE_TOL * (sum of pruned gates), eV per structure; measured up to
# 4.4e-4 on these random models (three seeds), so a tenfold margin on the worst case
PRUNE_TOL = 5e-3


def test_pruning_changes_energies_within_tolerance_and_drops_neural_atoms():
    """Gates below epsilon are pruned: fewer neural atoms enter the attention, and the energy
    changes by O(sum of pruned gates), the documented tolerance."""
    structures = default_structures(ELEMENTS)
    model = _model(prune_epsilon=1e-2)
    seen = []
    layer = neural_atom_layers(model)[0]
    layer.attention.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    changes = []
    for small in (1e-3, 1e-5):
        _set_gates(model, [0.9, small, 0.7, small])
        assert layer.k_eff() == 2
        seen.clear()
        pruned = predict(model, structures)
        assert seen == [2]  # the attention ran with K_eff = 2 neural atoms, not K_max = 4
        layer.prune_epsilon = 0.0
        full = predict(model, structures)
        layer.prune_epsilon = 1e-2
        change = max(abs(p["energy"] - f["energy"]) for p, f in zip(pruned, full, strict=True))
        assert 0 < change <= PRUNE_TOL * 2 * small
        changes.append(change)
    assert changes[1] < changes[0] / 50  # vanishes linearly with the pruned gates


def test_prune_epsilon_can_be_overridden_for_evaluation():
    from eqna.nn.neural_atoms import set_prune_epsilon

    model = _model()
    layer = _set_gates(model, [0.9, 1e-4, 0.7, 1e-4])
    set_prune_epsilon(model, 0.0)
    assert layer.active().numel() == 4 and all(
        lay.prune_epsilon == 0 for lay in neural_atom_layers(model)
    )
    set_prune_epsilon(model, 0.8)
    assert layer.k_eff() == 1
    with pytest.raises(ValueError, match=">= 0"):
        set_prune_epsilon(model, -1.0)


def test_all_gates_closed_leaves_the_backbone_path():
    """Every neural atom pruned: the layer is the identity (no reciprocal view), energies finite."""
    model = _model()
    for layer in neural_atom_layers(model):
        _set_gates_of(layer, [1e-4] * 4)
    out = predict(model, default_structures(ELEMENTS))
    assert all(layer.k_eff() == 0 for layer in neural_atom_layers(model))
    assert all(np.isfinite(o["energy"]) and np.isfinite(o["forces"]).all() for o in out)


def _set_gates_of(layer, values):
    with torch.no_grad():
        layer.gate_logits.copy_(torch.logit(torch.tensor(values, dtype=torch.float64)))


def test_training_mode_never_prunes():
    model = _model()
    layer = _set_gates(model, [0.9, 1e-4, 0.7, 1e-4])
    assert layer.active().numel() == 2
    model.train()
    assert layer.active().numel() == 4


def test_fixed_k_gates_are_open_and_have_no_penalty():
    model = _model(learn_gates=False)
    layer = neural_atom_layers(model)[0]
    assert layer.gate_logits is None and torch.all(layer.gates() == 1)
    assert float(gate_penalty(model)) == 0.0
    assert k_eff_summary(model) == {"k_eff": 8.0, "k_eff_0": 4.0, "k_eff_1": 4.0}


def test_save_load_keeps_gates_and_k_eff(tmp_path):
    model = _model()
    _set_gates(model, [0.9, 1e-3, 0.7, 0.2])
    save_model(tmp_path / "m.pt", model, "equivariant", na_hparams())
    loaded, _ = load_model(tmp_path / "m.pt")
    for old, new in zip(neural_atom_layers(model), neural_atom_layers(loaded), strict=True):
        torch.testing.assert_close(new.gates(), old.gates(), rtol=0, atol=0)
        assert new.k_eff() == old.k_eff()
    assert k_eff_summary(loaded)["k_eff_0"] == 3.0


def test_layer_validates_its_arguments():
    from e3nn import o3

    with pytest.raises(ValueError, match="need 0e scalars"):
        NeuralAtoms(o3.Irreps("4x1o"))
    with pytest.raises(ValueError, match="must divide the multiplicity"):
        NeuralAtoms(o3.Irreps("8x0e+6x1o"), num_heads=4)
    with pytest.raises(ValueError, match="gate_init"):
        NeuralAtoms(o3.Irreps("8x0e"), gate_init=1.0)


def test_isolated_atoms_batch_with_a_molecule():
    """A lone atom batched with a molecule still gets exactly E0: neural atoms are per graph."""
    model = _model(reciprocal=True)
    lone = Atoms(numbers=[8], positions=[[0.0, 0.0, 0.0]])
    out = predict(model, [rattled_molecule(ELEMENTS), lone])
    assert out[1]["energy"] == pytest.approx(HPARAMS["atomic_energies"][2], abs=1e-12)
    assert math.isfinite(out[0]["energy"])


@pytest.mark.parametrize("penalty", [0.0, 0.5], ids=["no-penalty", "l1"])
def test_l1_penalty_closes_gates_during_training(tmp_path, penalty):
    """A real (tiny) training run: with lambda > 0 gates close and the logged K_eff drops below
    K_max; without it every gate stays open. The exported model keeps the learned K_eff."""
    import csv

    from eqna.train.config import config_from_dict
    from eqna.train.run import train

    model = {
        "family": "equivariant",
        "num_channels": 8,
        "radial_hidden": [16],
        "readout_hidden": 8,
        "r_max": 4.0,
        "neural_atoms": {
            "num_neural_atoms": 6,
            "num_heads": 2,
            "gate_init": 0.3,
            "prune_epsilon": 0.2,
        },
    }
    config = config_from_dict(
        {
            "model": model,
            "data": {
                "train": "embedded:xtb_molecules.xyz",
                "max_train_frames": 40,
                "batch_size": 2,
            },
            "training": {
                "max_epochs": 3,
                "progress_bar": False,
                "lr": 0.05,
                "gate_penalty": penalty,
                "ema_decay": None,
            },
        }
    )
    metrics = train(config, tmp_path)
    with open(tmp_path / "logs" / "metrics.csv") as f:
        k_eff = [float(r["k_eff"]) for r in csv.DictReader(f) if r.get("k_eff")]
    assert len(k_eff) == 3 and k_eff[0] <= 6
    if penalty:
        assert k_eff[-1] < 6
    else:
        assert k_eff == [6.0, 6.0, 6.0]
    loaded, payload = load_model(tmp_path / "model.pt")
    assert k_eff_summary(loaded)["k_eff"] == payload["extra"]["k_eff"] == metrics["k_eff"]
