"""Neighbour lists with integer cell shifts, for periodic, mixed and non-periodic systems."""

import numpy as np
import torch
from matscipy.neighbours import neighbour_list


def _complete_cell(cell: np.ndarray, pbc: np.ndarray, positions: np.ndarray, cutoff: float):
    """Replace the rows of non-periodic directions by long vectors that no edge can cross.

    matscipy needs a full-rank cell; a molecule has none and a slab has a zero third row. The
    substitute rows only shape the search box: no shift is ever taken along them.
    """
    cell = cell.copy()
    extent = np.ptp(positions, axis=0).max() if len(positions) else 0.0
    length = 2.0 * (extent + np.abs(positions).max(initial=0.0) + cutoff) + 10.0
    periodic_rows = [cell[i] for i in range(3) if pbc[i]]
    for i in range(3):
        if pbc[i]:
            continue
        if len(periodic_rows) == 2:
            direction = np.cross(periodic_rows[0], periodic_rows[1])
        elif len(periodic_rows) == 1:
            axis = np.argmin(np.abs(periodic_rows[0]))
            direction = np.cross(periodic_rows[0], np.eye(3)[axis])
            if i != [j for j in range(3) if not pbc[j]][0]:
                direction = np.cross(periodic_rows[0], direction)
        else:
            direction = np.eye(3)[i]
        cell[i] = length * direction / np.linalg.norm(direction)
    return cell


def neighbour_graph(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray]:
    """All directed pairs closer than ``cutoff``, periodic images included.

    Args:
        positions: [n, 3] Cartesian positions, Å (need not lie inside the cell).
        cell: [3, 3] lattice vectors as rows; rows of non-periodic directions may be zero.
        pbc: [3] bool periodicity per lattice direction.
        cutoff: radius, Å.

    Returns:
        edge_index: [2, e] int64, row 0 the centre atom i, row 1 the neighbour j.
        shifts: [e, 3] int64, so that ``r_ij = pos[j] - pos[i] + shifts @ cell``.
    """
    positions = np.asarray(positions, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    cell = np.asarray(cell, dtype=np.float64)
    if pbc.any() and abs(np.linalg.det(np.where(pbc[:, None], cell, np.eye(3)))) < 1e-12:
        raise ValueError("periodic directions have a degenerate (zero or linearly dependent) cell")
    search_cell = _complete_cell(cell, pbc, positions, cutoff) if not pbc.all() else cell
    i, j, shifts = neighbour_list(
        "ijS", positions=positions, cell=search_cell, pbc=pbc, cutoff=float(cutoff)
    )
    shifts = shifts.astype(np.int64)
    keep = ~((i == j) & (shifts == 0).all(axis=1))
    edge_index = np.stack([i[keep], j[keep]]).astype(np.int64)
    return edge_index, shifts[keep]


def edge_lengths(
    positions: np.ndarray, cell: np.ndarray, edge_index: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """[e] lengths |pos[j] - pos[i] + shifts @ cell| of the edges (i, j) = edge_index, Å."""
    centre, neighbour = edge_index
    return np.linalg.norm(positions[neighbour] - positions[centre] + shifts @ cell, axis=1)


def nearest_neighbour_mask(centres: torch.Tensor, lengths: torch.Tensor, k: int) -> torch.Tensor:
    """Keeps, for every centre atom, its ``k`` shortest edges (CGCNN's max_num_nbr).

    Ties are broken by edge order, so the choice is deterministic. Dropping edges is not smooth
    in the positions: use it for property models, never for potentials.

    Args:
        centres: [e] long, the centre atom of each edge (``edge_index[0]``).
        lengths: [e] float, edge lengths.
        k: maximum number of neighbours per centre, >= 1.

    Returns:
        [e] bool mask of the edges kept.
    """
    if centres.numel() == 0:
        return torch.ones(0, dtype=torch.bool, device=centres.device)
    by_length = torch.sort(lengths.detach(), stable=True).indices
    order = by_length[torch.sort(centres[by_length], stable=True).indices]  # centre, then length
    sorted_centres = centres[order]
    first = torch.ones_like(sorted_centres, dtype=torch.bool)
    first[1:] = sorted_centres[1:] != sorted_centres[:-1]
    starts = torch.nonzero(first).squeeze(1)
    run_start = starts[torch.cumsum(first.long(), 0) - 1]
    rank = torch.arange(order.numel(), device=centres.device) - run_start
    keep = torch.zeros_like(first)
    keep[order] = rank < k
    return keep
