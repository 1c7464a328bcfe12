"""ASE ``Atoms`` -> graph dictionary (see :mod:`eqna.data.keys`)."""

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from eqna.data import keys
from eqna.data.neighbours import nearest_neighbour_mask, neighbour_graph


class UnknownElementError(KeyError):
    """An atom whose element the model was not trained on."""

    def __str__(self) -> str:
        return str(self.args[0])


def type_indices(numbers: np.ndarray, elements: Sequence[int], where: str = "") -> np.ndarray:
    """Map atomic numbers to indices into ``elements``; unknown elements are an error."""
    lookup = np.full(119, -1, dtype=np.int64)
    lookup[np.asarray(elements, dtype=np.int64)] = np.arange(len(elements))
    types = lookup[numbers]
    if (types < 0).any():
        from ase.data import chemical_symbols

        missing = sorted({chemical_symbols[z] for z in numbers[types < 0]})
        known = [chemical_symbols[z] for z in elements]
        raise UnknownElementError(
            f"{where}element(s) {', '.join(missing)} not known to the model (it knows "
            f"{', '.join(known)})"
        )
    return types


def atoms_to_graph(
    atoms: Atoms,
    cutoff: float,
    elements: Sequence[int],
    labels: dict[str, np.ndarray] | None = None,
    where: str = "",
    max_num_neighbors: int | None = None,
) -> dict[str, torch.Tensor]:
    """Build the graph of one structure, in float64.

    Args:
        atoms: the structure; ``atoms.pbc`` selects periodic directions.
        cutoff: neighbour radius, Å.
        elements: atomic numbers the model knows, in the model's type order.
        labels: optional label arrays by key (energy scalar, forces [n, 3], stress [3, 3]).
        where: prefix for error messages, e.g. ``"train.xyz frame 12: "``.
        max_num_neighbors: keep only each atom's nearest neighbours (property models; the
            model applies the same rule, so this only saves memory).

    Returns:
        One-graph dict; graph fields carry a leading dimension of 1.
    """
    numbers = atoms.numbers.astype(np.int64)
    edge_index, shifts = neighbour_graph(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    if max_num_neighbors is not None:
        i, j = edge_index
        lengths = np.linalg.norm(
            atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array, axis=1
        )
        keep = nearest_neighbour_mask(
            torch.from_numpy(i), torch.from_numpy(lengths), max_num_neighbors
        ).numpy()
        edge_index, shifts = edge_index[:, keep], shifts[keep]
    graph = {
        keys.POSITIONS: torch.tensor(atoms.positions, dtype=torch.float64),
        keys.ATOMIC_NUMBERS: torch.from_numpy(numbers),
        keys.NODE_TYPES: torch.from_numpy(type_indices(numbers, elements, where)),
        keys.CELL: torch.tensor(atoms.cell.array, dtype=torch.float64).unsqueeze(0),
        keys.PBC: torch.tensor(atoms.pbc, dtype=torch.bool).unsqueeze(0),
        keys.EDGE_INDEX: torch.from_numpy(edge_index),
        keys.EDGE_CELL_SHIFT: torch.from_numpy(shifts).to(torch.float64),
        keys.NUM_ATOMS: torch.tensor([len(atoms)], dtype=torch.long),
    }
    for key, value in (labels or {}).items():
        tensor = torch.as_tensor(np.asarray(value), dtype=torch.float64)
        graph[key] = tensor.unsqueeze(0) if key in keys.GRAPH_FIELDS else tensor
    return graph
