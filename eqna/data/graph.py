"""ASE ``Atoms`` -> graph dictionary (see :mod:`eqna.data.keys`): the one input path.

Training, evaluation, the ASE calculator, MD and every later consumer build a model's input
with :func:`atoms_to_graph` (through :class:`GraphSpec`, which the model declares) and batch it
with :func:`eqna.data.collate.collate`, so they all feed the model the same dict.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from eqna.data import keys
from eqna.data.neighbours import edge_lengths, nearest_neighbour_mask, neighbour_graph


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


Neighbours = tuple[np.ndarray, np.ndarray]
"""A neighbour list: edge_index [2, e] (centre, neighbour) and integer cell shifts [e, 3]."""


def atoms_to_graph(
    atoms: Atoms,
    cutoff: float,
    elements: Sequence[int],
    labels: dict[str, np.ndarray] | None = None,
    where: str = "",
    max_num_neighbors: int | None = None,
    neighbours: Neighbours | None = None,
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
        neighbours: a neighbour list already built for these positions (e.g. the ASE
            calculator's Verlet list); None searches within ``cutoff``.

    Returns:
        One-graph dict; graph fields carry a leading dimension of 1.
    """
    numbers = atoms.numbers.astype(np.int64)
    if neighbours is None:
        neighbours = neighbour_graph(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    edge_index, shifts = neighbours
    if max_num_neighbors is not None:
        lengths = edge_lengths(atoms.positions, atoms.cell.array, edge_index, shifts)
        keep = nearest_neighbour_mask(
            torch.from_numpy(edge_index[0]), torch.from_numpy(lengths), max_num_neighbors
        ).numpy()
        edge_index, shifts = edge_index[:, keep], shifts[keep]
    graph = {
        keys.POSITIONS: torch.tensor(atoms.positions, dtype=torch.float64),
        keys.ATOMIC_NUMBERS: torch.from_numpy(numbers),
        keys.NODE_TYPES: torch.from_numpy(type_indices(numbers, elements, where)),
        keys.CELL: torch.tensor(atoms.cell.array, dtype=torch.float64).unsqueeze(0),
        keys.PBC: torch.tensor(atoms.pbc, dtype=torch.bool).unsqueeze(0),
        keys.EDGE_INDEX: torch.as_tensor(edge_index, dtype=torch.long),
        keys.EDGE_CELL_SHIFT: torch.as_tensor(shifts, dtype=torch.float64),
        keys.NUM_ATOMS: torch.tensor([len(atoms)], dtype=torch.long),
    }
    for key, value in (labels or {}).items():
        tensor = torch.as_tensor(np.asarray(value), dtype=torch.float64)
        graph[key] = tensor.unsqueeze(0) if key in keys.GRAPH_FIELDS else tensor
    return graph


@dataclass(frozen=True)
class GraphSpec:
    """What a model needs of its input graph: cutoff (Å), element order and neighbour policy.

    Every model declares one (:attr:`eqna.models.AtomisticModel.graph_spec`); datasets and the
    calculator build graphs through it, never from loose arguments.
    """

    cutoff: float
    elements: tuple[int, ...]
    max_num_neighbors: int | None = None  # keep only the k nearest neighbours (CGCNN)

    def __post_init__(self):
        object.__setattr__(self, "elements", tuple(int(z) for z in self.elements))

    def graph(
        self,
        atoms: Atoms,
        labels: dict[str, np.ndarray] | None = None,
        where: str = "",
        neighbours: Neighbours | None = None,
    ) -> dict[str, torch.Tensor]:
        """:func:`atoms_to_graph` with this spec."""
        return atoms_to_graph(
            atoms, self.cutoff, self.elements, labels, where, self.max_num_neighbors, neighbours
        )
