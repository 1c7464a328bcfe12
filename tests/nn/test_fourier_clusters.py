"""Fourier-space clustering of neural atoms: the shipped physics suite, a K per structure,
permutation equivariance of the assignment, batched == per structure, continuity and
conservative forces along a path on which K changes, and the hard mode against a plain
implementation of threshold clustering."""

import ase.build
import numpy as np
import pytest
import torch
from helpers import HPARAMS

from eqna.data.collate import collate, to_device
from eqna.data.tetris import tetris_pieces
from eqna.models.io import build_model
from eqna.nn.neural_atoms import cluster_statistics, fourier_layers
from eqna.testing import ModelTestSuite, default_structures
from eqna.testing.model_checks import check_forces_finite_difference

FOURIER = {"num_heads": 2, "assignment": "fourier"}


def fourier_hparams(**neural_atoms) -> dict:
    return {**HPARAMS, "neural_atoms": {**FOURIER, **neural_atoms}, "neural_atoms_after": [0, 1]}


class TestFourierEquivariantPooling(ModelTestSuite):
    family = "equivariant"
    hparams = fourier_hparams(pooling="equivariant")
    local = False


class TestFourierInvariantPooling(TestFourierEquivariantPooling):
    hparams = fourier_hparams(pooling="invariant")


class TestFourierManyBody(TestFourierEquivariantPooling):
    hparams = {**fourier_hparams(pooling="equivariant"), "correlation": 3}
    tol32 = 1e-4  # the product's float32 rounding, as in tests/nn/test_product.py


class TestFourierReciprocalSignature(TestFourierEquivariantPooling):
    """The long-range signature; slabs are rejected by it, so molecule + triclinic crystal."""

    hparams = fourier_hparams(pooling="equivariant", fourier_signature="reciprocal")

    def structures(self, elements, r_max):
        return default_structures(elements, self.seed)[:2]


def model_of(seed=0, **hparams):
    torch.manual_seed(seed)
    return build_model("equivariant", {**fourier_hparams(), **hparams}).double().eval()


def run(model, structures, **kwargs):
    batch = to_device(
        collate([model.graph_spec.graph(a) for a in structures]), "cpu", torch.float64
    )
    out = model(batch, compute_stress=False, **kwargs)
    return out, [layer.last_counts.clone() for layer in fourier_layers(model)]


def scaled(atoms, factor):
    out = atoms.copy()
    out.positions *= factor
    return out


ETHANOL = ase.build.molecule("CH3CH2OH")


def test_cluster_count_is_per_structure_and_batched_equals_single():
    model = model_of()
    structures = [scaled(ETHANOL, 1.3), ETHANOL, tetris_pieces()[3], ase.build.molecule("C6H6")]
    out, counts = run(model, structures)
    singles = [run(model, [a]) for a in structures]
    for layer, batched in enumerate(counts):
        alone = torch.cat([c[layer] for _, c in singles])
        torch.testing.assert_close(batched, alone, rtol=1e-10, atol=1e-12)
    first = counts[0]
    assert float(first.max() - first.min()) > 0.5  # K differs between structures of one batch
    assert bool((first >= 1 - 1e-9).all())  # never below one cluster
    energies = torch.stack([o["energy"][0] for o, _ in singles]).detach()
    torch.testing.assert_close(out["energy"].detach(), energies, rtol=1e-10, atol=1e-10)


def test_assignment_is_permutation_equivariant():
    model = model_of()
    layer = fourier_layers(model)[0]
    seen = {}
    layer.fourier.register_forward_hook(lambda m, i, o: seen.setdefault("c", []).append(o))
    perm = np.random.default_rng(0).permutation(len(ETHANOL))
    run(model, [ETHANOL])
    run(model, [ETHANOL[perm]])
    direct, permuted = seen["c"]  # layer 0, direct then permuted
    p = torch.as_tensor(perm)
    for key in ("similarity", "retrieval"):
        torch.testing.assert_close(
            permuted[key][0], direct[key][0][p][:, p], rtol=1e-10, atol=1e-12
        )
    torch.testing.assert_close(
        permuted["leaders"][0], direct["leaders"][0][p], rtol=1e-10, atol=1e-12
    )


def test_energy_continuous_and_conservative_where_the_count_changes():
    """Along a stretch of ethanol on which the first layer's K goes from ~1 to ~2, the energy
    difference equals the work of the forces (trapezoids on 121 points) and forces match
    finite differences at the points where K changes fastest."""
    model = model_of()
    factors = np.linspace(1.0, 1.2, 121)
    energies, work, counts = [], [0.0], []
    previous = None
    for factor in factors:
        atoms = scaled(ETHANOL, factor)
        out, k = run(model, [atoms])
        energies.append(float(out["energy"][0].detach()))
        counts.append(float(k[0][0]))
        forces = out["forces"].detach().numpy()
        if previous is not None:  # dE = -F . dr along the path, trapezoid rule
            step = atoms.positions - previous[0]
            work.append(work[-1] - 0.5 * float(((forces + previous[1]) * step).sum()))
        previous = (atoms.positions.copy(), forces)
    counts = np.asarray(counts)
    assert counts.max() - counts.min() > 0.5, counts  # the path crosses a change of K
    energy_change = np.asarray(energies) - energies[0]
    np.testing.assert_allclose(energy_change, work, atol=2e-5 + 1e-3 * np.ptp(energies))
    fastest = int(np.argmax(np.abs(np.diff(counts))))
    for factor in factors[[fastest, fastest + 1]]:
        check_forces_finite_difference(model, [scaled(ETHANOL, factor)])


def _threshold_clusters(z: np.ndarray, score: np.ndarray, tau: float) -> int:
    """Leaders as plain code: atoms scored highest among those within tau of them."""
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    near = d2 < tau**2
    leaders = [i for i in range(len(z)) if score[i] >= score[near[i]].max()]
    return len(leaders)


def test_hard_mode_is_threshold_clustering_for_property_models_only():
    hparams = {**fourier_hparams(fourier_hard=True), "output": "property",
               "target_mean": [0.0], "target_std": [1.0]}  # fmt: skip
    hparams.pop("atomic_energies")
    torch.manual_seed(0)
    model = build_model("equivariant", hparams).double().eval()
    layer = fourier_layers(model)[0].fourier
    seen = {}
    layer.project.register_forward_hook(lambda m, i, o: seen.setdefault("z", o))
    layer.score.register_forward_hook(lambda m, i, o: seen.setdefault("s", o))
    structure = scaled(ETHANOL, 1.2)
    _, counts = run(model, [structure])
    z = seen["z"].detach().numpy()
    z = z / np.sqrt((z**2).sum(-1, keepdims=True) + 1)
    expected = _threshold_clusters(z, seen["s"].detach().numpy()[:, 0], layer.threshold)
    assert float(counts[0][0]) == expected
    with pytest.raises(ValueError, match="fourier_hard"):
        build_model("equivariant", fourier_hparams(fourier_hard=True))


def test_cluster_statistics():
    stats = cluster_statistics([np.array([1.0, 3.0]), np.array([1.0, 1.0])])
    assert stats == {"clusters_mean": 3.0, "clusters_std": 1.0, "clusters_min": 2.0,
                     "clusters_max": 4.0}  # fmt: skip
    assert cluster_statistics([]) == {}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="assignment"):
        model_of(neural_atoms={**FOURIER, "assignment": "kmeans"})
    with pytest.raises(ValueError, match="fourier_threshold"):
        model_of(neural_atoms={**FOURIER, "fourier_threshold": 0.0})
    with pytest.raises(ValueError, match="fourier_signature"):
        model_of(neural_atoms={**FOURIER, "fourier_signature": "fft"})
