"""neighbour_graph against ASE's reference neighbour list, as sets of (i, j, shift)."""

import ase.build
import numpy as np
import pytest
from ase import Atoms
from ase.neighborlist import neighbor_list

from eqna.data.neighbours import neighbour_graph


def _edges_eqna(atoms: Atoms, cutoff: float) -> set:
    edge_index, shifts = neighbour_graph(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    assert edge_index.dtype == np.int64 and shifts.dtype == np.int64
    assert edge_index.shape[1] == shifts.shape[0]
    return {(int(i), int(j), *map(int, s)) for i, j, s in zip(*edge_index, shifts, strict=True)}


def _edges_ase(atoms: Atoms, cutoff: float) -> set:
    i, j, shifts = neighbor_list("ijS", atoms, cutoff)
    return {(int(a), int(b), *map(int, s)) for a, b, s in zip(i, j, shifts, strict=True)}


def _assert_same(atoms: Atoms, cutoff: float) -> set:
    ours, reference = _edges_eqna(atoms, cutoff), _edges_ase(atoms, cutoff)
    assert ours == reference, (
        f"only eqna: {sorted(ours - reference)[:5]}, only ASE: {sorted(reference - ours)[:5]}"
    )
    assert reference, "vacuous comparison: no edges"
    # r_ij = pos[j] - pos[i] + S @ cell is shorter than the cutoff and never a self-pair at 0
    edge_index, shifts = neighbour_graph(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    vectors = atoms.positions[edge_index[1]] - atoms.positions[edge_index[0]]
    lengths = np.linalg.norm(vectors + shifts @ atoms.cell.array, axis=1)
    assert (lengths < cutoff).all() and (lengths > 0).all()
    return ours


def _skewed_cell(seed: int = 0) -> Atoms:
    """Four atoms in a strongly sheared cell, all lattice vectors shorter than the cutoff."""
    rng = np.random.default_rng(seed)
    cell = np.array([[2.6, 0.0, 0.0], [1.9, 2.2, 0.0], [-1.1, 1.3, 2.4]])
    cell += 0.1 * rng.normal(size=(3, 3))
    atoms = Atoms("Si2O2", scaled_positions=rng.random((4, 3)), cell=cell, pbc=True)
    return atoms


def test_bulk_silicon():
    atoms = ase.build.bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.rattle(0.05, seed=1)
    edges = _assert_same(atoms, 4.0)
    assert len(edges) == len(atoms) * 16  # 4 first + 12 second neighbours, rattled slightly


def test_skewed_triclinic_cell_smaller_than_cutoff():
    atoms = _skewed_cell()
    assert atoms.cell.lengths().max() < 3.5
    edges = _assert_same(atoms, 5.0)
    assert max(max(abs(s) for s in e[2:]) for e in edges) >= 2  # images beyond the first shell
    assert any(i == j for i, j, *_ in edges)  # an atom sees its own images


def test_atoms_outside_the_cell():
    atoms = _skewed_cell(seed=3)
    atoms.positions[0] += 2 * atoms.cell.array[0] - 3 * atoms.cell.array[2]
    atoms.positions[1] -= 1.7 * atoms.cell.array[1]
    atoms.positions += [0.4, -9.0, 5.0]
    assert (np.abs(atoms.get_scaled_positions(wrap=False)) > 1).any()
    _assert_same(atoms, 4.5)


def test_molecule_without_cell():
    atoms = ase.build.molecule("CH3CH2OH")
    atoms.positions += [50.0, -20.0, 3.0]  # far from the origin
    edges = _assert_same(atoms, 3.0)
    assert all(e[2:] == (0, 0, 0) for e in edges)


@pytest.mark.parametrize("pbc", [(True, False, True), (False, True, False), (True, True, False)])
def test_mixed_periodicity(pbc):
    atoms = _skewed_cell(seed=5)
    atoms.pbc = pbc
    atoms.positions[0] += 3 * atoms.cell.array[0] - 2 * atoms.cell.array[2]  # outside the cell
    edges = _assert_same(atoms, 4.5)
    for direction in np.flatnonzero(~np.asarray(pbc)):
        assert all(e[2 + direction] == 0 for e in edges)


def test_slab_with_zero_third_lattice_vector():
    atoms = ase.build.fcc111("Al", size=(2, 2, 3), vacuum=None, periodic=False)
    atoms.pbc = (True, True, False)
    atoms.cell[2] = 0.0
    atoms.rattle(0.05, seed=2)
    edges = _assert_same(atoms, 5.0)
    assert all(e[4] == 0 for e in edges)


@pytest.mark.parametrize(
    "cell",
    [np.zeros((3, 3)), np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3.0]])],
    ids=["zero", "linearly-dependent"],
)
def test_degenerate_periodic_cell_is_an_error(cell):
    with pytest.raises(ValueError, match="degenerate"):
        neighbour_graph(np.zeros((2, 3)) + [[0, 0, 0], [1, 1, 1]], cell, np.ones(3, bool), 3.0)


def test_degenerate_direction_that_is_not_periodic_is_allowed():
    cell = np.array([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 0]])
    edge_index, _ = neighbour_graph([[0, 0, 0], [1, 1, 1]], cell, [True, True, False], 3.0)
    assert edge_index.shape[1] > 2


def test_isolated_atom_has_no_edges():
    edge_index, shifts = neighbour_graph([[0.0, 0.0, 0.0]], np.eye(3) * 6.0, [True] * 3, 5.0)
    assert edge_index.shape == (2, 0) and shifts.shape == (0, 3)
