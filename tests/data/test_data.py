"""Data pipeline: graphs and batching, labels, splits, reference energies, embedded data."""

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator

from eqna.data import keys
from eqna.data.collate import collate, to_device
from eqna.data.datasets import (
    DataError,
    GraphDataset,
    LabelKeys,
    extract_labels,
    is_isolated_atom,
    read_structures,
    resolve_path,
    split_indices,
)
from eqna.data.graph import GraphSpec, UnknownElementError, atoms_to_graph
from eqna.data.statistics import (
    energy_scale_shift,
    isolated_atom_energies,
    least_squares_energies,
)

ELEMENTS = [1, 6, 8]


def _labelled(atoms: Atoms, energy=None, forces=None, stress=None) -> Atoms:
    """Attach labels as calculator results (what extxyz reading produces)."""
    results = {
        k: v
        for k, v in (("energy", energy), ("forces", forces), ("stress", stress))
        if v is not None
    }
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


@pytest.fixture(scope="module")
def embedded():
    return read_structures("embedded:xtb_molecules.xyz")


# graphs and batching


def test_collate_offsets_edges_and_builds_batch_vector():
    structures = [molecule("H2O"), molecule("CH3CH2OH"), bulk("C", "diamond", a=3.57)]
    graphs = [atoms_to_graph(a, 2.0, ELEMENTS) for a in structures]
    batch = collate(graphs)
    sizes = [len(a) for a in structures]
    assert batch[keys.PTR].tolist() == [0, 3, 12, 14]
    assert batch[keys.BATCH].tolist() == [g for g, n in enumerate(sizes) for _ in range(n)]
    assert batch[keys.NUM_ATOMS].tolist() == sizes
    expected = torch.cat(
        [g[keys.EDGE_INDEX] + int(o) for g, o in zip(graphs, [0, 3, 12], strict=True)], dim=1
    )
    assert torch.equal(batch[keys.EDGE_INDEX], expected)
    assert batch[keys.EDGE_INDEX].shape[1] == batch[keys.EDGE_CELL_SHIFT].shape[0]
    # every edge stays inside its own graph
    owner = batch[keys.BATCH][batch[keys.EDGE_INDEX]]
    assert torch.equal(owner[0], owner[1])
    assert batch[keys.CELL].shape == (3, 3, 3) and batch[keys.PBC].shape == (3, 3)
    assert batch[keys.PBC].tolist() == [[False] * 3, [False] * 3, [True] * 3]


def test_to_device_casts_only_floating_tensors():
    batch = collate([atoms_to_graph(molecule("CH4"), 2.0, ELEMENTS)])
    cast = to_device(batch, "cpu", torch.float32)
    assert cast[keys.POSITIONS].dtype == torch.float32
    assert cast[keys.EDGE_INDEX].dtype == torch.long and cast[keys.PBC].dtype == torch.bool


def test_unknown_element_names_it_and_the_known_ones():
    with pytest.raises(UnknownElementError, match=r"f.xyz frame 2: element\(s\) Si.*H, C, O"):
        atoms_to_graph(bulk("Si"), 3.0, ELEMENTS, where="f.xyz frame 2: ")


# labels


def test_labels_from_calculator_results():
    atoms = molecule("H2O")
    forces = np.arange(9.0).reshape(3, 3)
    labels = extract_labels(_labelled(atoms, -5.0, forces), LabelKeys(), "")
    assert float(labels[keys.ENERGY]) == -5.0
    np.testing.assert_array_equal(labels[keys.FORCES], forces)
    assert labels[keys.HAS_ENERGY] and labels[keys.HAS_FORCES] and not labels[keys.HAS_STRESS]
    np.testing.assert_array_equal(labels[keys.STRESS], np.zeros((3, 3)))


def test_labels_from_custom_info_and_arrays_keys():
    atoms = _labelled(molecule("H2O"), energy=99.0, forces=np.ones((3, 3)))
    atoms.info["REF_energy"] = -7.5
    atoms.arrays["REF_forces"] = np.full((3, 3), 0.25)
    atoms.info["REF_stress"] = np.arange(9.0).reshape(3, 3)
    label_keys = LabelKeys(energy="REF_energy", forces="REF_forces", stress="REF_stress")
    labels = extract_labels(atoms, label_keys, "")
    assert float(labels[keys.ENERGY]) == -7.5  # the custom key wins over the calculator
    np.testing.assert_array_equal(labels[keys.FORCES], np.full((3, 3), 0.25))
    np.testing.assert_array_equal(labels[keys.STRESS], np.arange(9.0).reshape(3, 3))


def test_custom_key_missing_does_not_fall_back_to_the_calculator():
    atoms = _labelled(molecule("H2O"), energy=99.0)
    labels = extract_labels(atoms, LabelKeys(energy="REF_energy"), "")
    assert not labels[keys.HAS_ENERGY] and float(labels[keys.ENERGY]) == 0.0


def test_voigt_and_full_stress():
    atoms = _labelled(bulk("C", "diamond", a=3.57), stress=np.arange(1.0, 7.0))
    voigt = extract_labels(atoms, LabelKeys(), "")[keys.STRESS]  # xx yy zz yz xz xy
    np.testing.assert_array_equal(voigt, [[1, 6, 5], [6, 2, 4], [5, 4, 3]])
    atoms.calc = None
    atoms.info["stress"] = voigt.reshape(-1).tolist()
    np.testing.assert_array_equal(extract_labels(atoms, LabelKeys(), "")[keys.STRESS], voigt)
    atoms.info["stress"] = [1.0] * 5
    with pytest.raises(DataError, match="here: stress has 5 components"):
        extract_labels(atoms, LabelKeys(), "here: ")


def test_missing_labels_are_zeros_with_flags_down():
    atoms = molecule("CH4")
    labels = extract_labels(atoms, LabelKeys(), "")
    for key, flag in (
        (keys.ENERGY, keys.HAS_ENERGY),
        (keys.FORCES, keys.HAS_FORCES),
        (keys.STRESS, keys.HAS_STRESS),
    ):
        assert not labels[flag]
        assert not np.any(labels[key])
    assert labels[keys.FORCES].shape == (5, 3) and float(labels[keys.WEIGHT]) == 1.0


def test_non_finite_label_names_file_and_frame():
    good = _labelled(molecule("H2O"), energy=-1.0)
    bad = _labelled(molecule("H2O"), energy=-1.0, forces=np.full((3, 3), np.nan))
    with pytest.raises(DataError, match="train.xyz frame 1: forces label is not finite"):
        GraphDataset([good, bad], GraphSpec(3.0, ELEMENTS), LabelKeys(), "train.xyz")
    with pytest.raises(DataError, match="train.xyz frame 7: energy label is not finite"):
        GraphDataset(
            [_labelled(molecule("H2O"), energy=math.inf)],
            GraphSpec(3.0, ELEMENTS),
            LabelKeys(),
            "train.xyz",
            frame_ids=[7],
        )


def test_graph_dataset_holds_labels_with_batchable_shapes():
    frames = [_labelled(molecule("H2O"), -1.0, np.zeros((3, 3))), molecule("CH4")]
    batch = collate(list(GraphDataset(frames, GraphSpec(3.0, ELEMENTS), LabelKeys(), "x")))
    assert batch[keys.ENERGY].tolist() == [-1.0, 0.0]
    assert batch[keys.HAS_ENERGY].tolist() == [True, False]
    assert batch[keys.FORCES].shape == (8, 3) and batch[keys.STRESS].shape == (2, 3, 3)


# splits and statistics


def test_split_indices_reproducible_disjoint_and_complete():
    train, valid, test = split_indices(100, 0.1, 0.2, seed=3)
    again = split_indices(100, 0.1, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again, strict=True))
    assert (len(train), len(valid), len(test)) == (70, 10, 20)
    assert sorted(np.concatenate([train, valid, test]).tolist()) == list(range(100))
    assert not np.array_equal(split_indices(100, 0.1, 0.2, seed=4)[1], valid)
    with pytest.raises(DataError, match="no training data"):
        split_indices(3, 0.5, 0.5, seed=0)


def _synthetic_graphs(e0: dict, n: int = 30, seed: int = 0) -> list[dict]:
    """Frames of random composition with E = sum E0 + small per-atom noise."""
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(n):
        numbers = rng.choice(ELEMENTS, size=rng.integers(2, 9))
        atoms = Atoms(numbers=numbers, positions=rng.normal(scale=3.0, size=(len(numbers), 3)))
        energy = sum(e0[z] for z in numbers) + 0.1 * len(numbers)
        forces = rng.normal(scale=0.5, size=(len(numbers), 3))
        labels = extract_labels(_labelled(atoms, energy, forces), LabelKeys(), "")
        graphs.append(atoms_to_graph(atoms, 2.0, ELEMENTS, labels))
    return graphs


def test_least_squares_recovers_reference_energies():
    e0 = {1: -13.6, 6: -1029.5, 8: -2041.0}
    graphs = _synthetic_graphs(e0)
    unlabelled = atoms_to_graph(
        Atoms("H2"), 2.0, ELEMENTS, extract_labels(Atoms("H2"), LabelKeys(), "")
    )
    fitted = least_squares_energies(graphs + [unlabelled], ELEMENTS)
    assert list(fitted) == ELEMENTS
    for z in ELEMENTS:  # the constant 0.1 eV per atom is absorbed into each E0
        assert fitted[z] == pytest.approx(e0[z] + 0.1, abs=1e-8)
    with pytest.raises(DataError, match="need structures with energies"):
        least_squares_energies([unlabelled], ELEMENTS)


def test_isolated_atom_energies():
    frames = [_labelled(Atoms(s), energy=e) for s, e in (("H", -1.0), ("O", -3.0), ("C", -2.0))]
    frames.append(_labelled(molecule("H2O"), energy=-10.0))
    isolated = [a for a in frames if is_isolated_atom(a)]
    assert len(isolated) == 3
    e0 = isolated_atom_energies(isolated, ELEMENTS, lambda a: a.get_potential_energy())
    assert e0 == {1: -1.0, 6: -2.0, 8: -3.0} and list(e0) == ELEMENTS
    with pytest.raises(DataError, match="element\\(s\\) N$"):
        isolated_atom_energies(isolated, [1, 7], lambda a: a.get_potential_energy())


def test_energy_scale_shift():
    e0 = {1: -1.0, 6: -2.0, 8: -3.0}
    graphs = _synthetic_graphs(e0, n=20)
    shift, scale = energy_scale_shift(graphs, [e0[z] for z in ELEMENTS])
    assert shift == pytest.approx(0.1, abs=1e-12)  # the mean residual energy per atom
    rms = torch.cat([g[keys.FORCES].reshape(-1) for g in graphs]).pow(2).mean().sqrt()
    assert scale == pytest.approx(float(rms), rel=1e-12)
    for g in graphs:
        g[keys.HAS_FORCES] = torch.tensor(False)
    _, scale = energy_scale_shift(graphs, [e0[z] for z in ELEMENTS])
    assert scale == 1.0  # residuals all equal: zero spread falls back to 1
    _, scale = energy_scale_shift(graphs[:1], [e0[z] for z in ELEMENTS])
    assert scale == 1.0


# files


def test_resolve_path(tmp_path):
    path = resolve_path("embedded:xtb_molecules.xyz")
    assert path.is_file() and path.name == "xtb_molecules.xyz"
    with pytest.raises(DataError, match="no embedded data set named 'nope.xyz'.*xtb_molecules"):
        resolve_path("embedded:nope.xyz")
    with pytest.raises(DataError, match="missing.xyz: file not found"):
        resolve_path(str(tmp_path / "missing.xyz"))
    (tmp_path / "empty.xyz").write_text("")
    with pytest.raises(DataError, match="empty.xyz"):
        read_structures(str(tmp_path / "empty.xyz"))


def test_read_embedded_structures(embedded):
    assert len(embedded) == 1504
    assert [a.get_chemical_formula() for a in embedded[:4]] == ["H", "C", "N", "O"]
    assert all(is_isolated_atom(a) for a in embedded[:4])
    assert embedded[0].get_potential_energy() == pytest.approx(-10.707211383283003, abs=1e-9)
    assert set(np.concatenate([a.numbers for a in embedded]).tolist()) == {1, 6, 7, 8}
    labels = extract_labels(embedded[100], LabelKeys(), "")
    assert labels[keys.HAS_ENERGY] and labels[keys.HAS_FORCES] and not labels[keys.HAS_STRESS]
    assert np.isfinite(labels[keys.FORCES]).all() and np.abs(labels[keys.FORCES]).max() < 20
