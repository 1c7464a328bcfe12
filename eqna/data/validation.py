"""Geometry checks of one structure, shared by training, evaluation, the calculator and MD.

A structure is refused, with a :class:`DataError` (a ``ValueError``) naming where it came
from, when its positions or cell are not finite, when a periodic cell is degenerate, when the
neighbour search would be absurdly large (a cell compressed by a units slip would otherwise
eat all memory), and when two atoms are closer than a minimum distance (a model sees a zero
edge length and turns to NaN). Everything but the distance check runs *before* the neighbour
search; the distance check reuses the edges the caller already has.
"""

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from eqna.data.errors import DataError
from eqna.data.neighbours import edge_lengths, neighbour_graph

__all__ = [
    "GeometryLimits",
    "check_before_search",
    "check_distances",
    "check_structure",
    "estimated_neighbours",
]

_BALL = {0: 1.0, 1: 2.0, 2: np.pi, 3: 4.0 / 3.0 * np.pi}  # unit-ball volume in k dimensions


@dataclass(frozen=True)
class GeometryLimits:
    """What a usable structure respects; ``prefix`` names the settings in messages."""

    min_distance: float = 0.1  # Å; 0 disables the check
    max_neighbors_per_atom: float = 500.0  # estimated before the search
    prefix: str = "data."  # "data." for the config keys, "" for keyword arguments


def _periodic_rows(atoms: Atoms) -> np.ndarray:
    """[k, 3] lattice vectors of the periodic directions."""
    return atoms.cell.array[np.asarray(atoms.pbc, dtype=bool)]


def _check_finite(atoms: Atoms, where: str) -> None:
    bad = ~np.isfinite(atoms.positions).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}{int(bad.sum())} atom position(s) are not finite (first: atom {first}, "
            f"{atoms.positions[first].tolist()})"
        )
    if not np.isfinite(atoms.cell.array).all():
        raise DataError(f"{where}the cell is not finite: {atoms.cell.array.tolist()}")


def _check_cell(atoms: Atoms, where: str) -> None:
    """A zero or (near) linearly dependent lattice vector along a periodic direction."""
    rows = _periodic_rows(atoms)
    lengths = np.linalg.norm(rows, axis=1)
    directions = np.flatnonzero(atoms.pbc)
    if (lengths < 1e-10).any():
        axis = int(directions[np.argmax(lengths < 1e-10)])
        raise DataError(
            f"{where}lattice vector {axis} is zero but pbc[{axis}] is True "
            f"(cell {atoms.cell.array.tolist()}, pbc {atoms.pbc.tolist()})"
        )
    if len(rows) > 1:
        unit = rows / lengths[:, None]
        # volume (or area) over the product of the lengths: 1 orthogonal, 0 degenerate
        ratio = float(np.sqrt(max(np.linalg.det(unit @ unit.T), 0.0)))
        if ratio < 1e-6:
            raise DataError(
                f"{where}the periodic lattice vectors are (nearly) linearly dependent "
                f"(volume / |a||b||c| = {ratio:.2g}; cell {atoms.cell.array.tolist()}, "
                f"pbc {atoms.pbc.tolist()})"
            )


def estimated_neighbours(atoms: Atoms, cutoff: float) -> float:
    """Neighbours per atom within ``cutoff`` expected from the number density, no search.

    Periodic directions: atoms per cell (area, length) times the ball of radius ``cutoff``;
    a non-periodic direction in which the atoms spread over more than ``2 cutoff`` counts
    only the fraction ``2 cutoff / extent``. An upper estimate, off by a factor below 2.
    """
    rows = _periodic_rows(atoms)
    k = len(rows)
    measure = float(np.sqrt(max(np.linalg.det(rows @ rows.T), 1e-300))) if k else 1.0
    complement = np.linalg.svd(rows, full_matrices=True)[2][k:] if k else np.eye(3)
    extent = np.ptp(atoms.positions @ complement.T, axis=0) if len(atoms) else np.zeros(3 - k)
    fraction = np.where(extent > 2 * cutoff, 2 * cutoff / np.maximum(extent, 1e-300), 1.0)
    return len(atoms) * _BALL[k] * cutoff**k / measure * float(np.prod(fraction))


def _check_density(atoms: Atoms, cutoff: float, limits: GeometryLimits, where: str) -> None:
    estimate = estimated_neighbours(atoms, cutoff)
    if estimate > limits.max_neighbors_per_atom:
        density = estimate / _BALL[3] / cutoff**3
        raise DataError(
            f"{where}{len(atoms)} atoms at a number density of {density:.3g} atoms/Å³ would "
            f"have ~{estimate:.3g} neighbours each within {cutoff:g} Å (limit "
            f"{limits.prefix}max_neighbors_per_atom={limits.max_neighbors_per_atom:g}); the "
            f"cell may be wrong (compressed, or not in Å): cell lengths "
            f"{np.round(atoms.cell.lengths(), 4).tolist()} Å, pbc {atoms.pbc.tolist()}"
        )


def check_before_search(atoms: Atoms, cutoff: float, limits: GeometryLimits, where: str) -> None:
    """Finite positions and cell, a sound periodic cell, a sane expected neighbour count.

    Args:
        atoms: the structure.
        cutoff: radius the neighbour search will use, Å.
        limits: the thresholds.
        where: message prefix, e.g. ``"train.xyz frame 3: "``.

    Raises:
        DataError: the first problem found.
    """
    if len(atoms) == 0:
        raise DataError(f"{where}the structure has no atoms")
    _check_finite(atoms, where)
    if atoms.pbc.any():
        _check_cell(atoms, where)
    _check_density(atoms, cutoff, limits, where)


def check_distances(
    atoms: Atoms,
    edge_index: np.ndarray,
    shifts: np.ndarray,
    limits: GeometryLimits,
    where: str,
    lengths: np.ndarray | None = None,
) -> None:
    """No edge shorter than ``limits.min_distance`` (the edges searched already, reused).

    Args:
        atoms: the structure the edges belong to.
        edge_index: [2, e] centre and neighbour atoms.
        shifts: [e, 3] integer cell shifts.
        limits: the thresholds (``min_distance`` 0 disables the check).
        where: message prefix.
        lengths: [e] the edge lengths, when the caller has them already.
    """
    if limits.min_distance <= 0 or edge_index.shape[1] == 0:
        return
    if lengths is None:
        lengths = edge_lengths(atoms.positions, atoms.cell.array, edge_index, shifts)
    k = int(np.argmin(lengths))
    if lengths[k] < limits.min_distance:
        i, j = (int(a) for a in edge_index[:, k])
        symbols = atoms.get_chemical_symbols()
        raise DataError(
            f"{where}atoms {i} ({symbols[i]}) and {j} ({symbols[j]}) are {lengths[k]:.3g} Å "
            f"apart, closer than {limits.prefix}min_distance={limits.min_distance:g} Å "
            "(a duplicated atom, or positions not in Å?)"
        )


def check_structure(atoms: Atoms, cutoff: float, limits: GeometryLimits, where: str) -> None:
    """All checks, with a neighbour search of its own: for a one-off structure (an MD start)."""
    check_before_search(atoms, cutoff, limits, where)
    edge_index, shifts = neighbour_graph(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    check_distances(atoms, edge_index, shifts, limits, where)
