"""Statistics computed once from the training data and stored in the model."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from eqna.data import keys
from eqna.data.datasets import DataError


def isolated_atom_energies(isolated: Sequence[Atoms], elements: Sequence[int], energy_of) -> dict:
    """E0 per element from single-atom frames; ``energy_of(atoms)`` reads the label."""
    e0s = {}
    for atoms in isolated:
        if len(atoms) == 1:
            e0s[int(atoms.numbers[0])] = float(energy_of(atoms))
    missing = [chemical_symbols[z] for z in elements if z not in e0s]
    if missing:
        raise DataError(f"no isolated-atom energy for element(s) {', '.join(missing)}")
    return {z: e0s[z] for z in elements}


@dataclass
class GraphSummary:
    """What the training statistics need of each structure, a few numbers per structure: all
    of them come from one pass over the graphs, which never need to be in memory together."""

    counts: np.ndarray  # [s, k] atoms of each element index
    energy: np.ndarray  # [s] eV (0 where unlabelled)
    has_energy: np.ndarray  # [s] bool
    has_forces: np.ndarray  # [s] bool
    forces_sq: np.ndarray  # [s] sum of squared force components (0 where unlabelled)
    num_edges: np.ndarray  # [s]
    weight: np.ndarray  # [s] loss weight
    numbers: frozenset  # atomic numbers present
    targets: np.ndarray | None = None  # [s, t] per-structure targets

    @property
    def num_atoms(self) -> np.ndarray:
        return self.counts.sum(axis=1)


def summary_row(g: dict, num_elements: int) -> dict:
    """What :class:`GraphSummary` keeps of one graph: a few numbers (cheap to send from a
    DataLoader worker, where a graph's tensors would each need a shared-memory handle)."""
    labelled = bool(g[keys.HAS_ENERGY]) if keys.HAS_ENERGY in g else False
    forces = bool(g[keys.HAS_FORCES]) if keys.HAS_FORCES in g else False
    row = {
        "counts": np.bincount(g[keys.NODE_TYPES].numpy(), minlength=num_elements),
        "energy": float(g[keys.ENERGY]) if labelled else 0.0,
        "has_energy": labelled,
        "has_forces": forces,
        "forces_sq": float(g[keys.FORCES].double().pow(2).sum()) if forces else 0.0,
        "num_edges": g[keys.EDGE_INDEX].shape[1],
        "weight": float(g[keys.WEIGHT]) if keys.WEIGHT in g else 1.0,
        "numbers": np.unique(g[keys.ATOMIC_NUMBERS].numpy()),
    }
    if keys.PROPERTY in g:
        row["property"] = g[keys.PROPERTY].reshape(-1).double().numpy()
    return row


def summarize(graphs: Iterable[dict], num_elements: int) -> GraphSummary:
    """One pass over ``graphs`` (a list, or a lazy dataset's graphs built one at a time)."""
    return summarize_rows((summary_row(g, num_elements) for g in graphs), num_elements)


def summarize_rows(rows: Iterable[dict], num_elements: int) -> GraphSummary:
    """The :class:`GraphSummary` of :func:`summary_row` results, in order."""
    names = ("counts", "energy", "has_energy", "has_forces", "forces_sq", "num_edges", "weight")
    columns: dict[str, list] = {name: [] for name in names}
    numbers: set[int] = set()
    targets = []
    for row in rows:
        for name in names:
            columns[name].append(row[name])
        numbers.update(int(z) for z in row["numbers"])
        if "property" in row:
            targets.append(row["property"])
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    arrays["counts"] = arrays["counts"].reshape(-1, num_elements).astype(float)
    return GraphSummary(**arrays, numbers=frozenset(numbers),
                        targets=np.stack(targets) if targets else None)  # fmt: skip


def as_summary(graphs, num_elements: int) -> GraphSummary:
    return graphs if isinstance(graphs, GraphSummary) else summarize(graphs, num_elements)


def _compositions(graphs, elements: Sequence[int]):
    """Element counts [s, k] and energies [s] of the structures with an energy label."""
    summary = as_summary(graphs, len(elements))
    labelled = summary.has_energy.astype(bool)
    if not labelled.any():
        raise DataError("E0s from the training data need structures with energies")
    return summary.counts[labelled], summary.energy[labelled]


def _inseparable(counts: np.ndarray, elements: Sequence[int], where: str) -> None:
    """Refuse a composition matrix of rank < number of elements: least squares would split
    the energy among those elements arbitrarily (hundreds of eV off), without a warning."""
    rank = int(np.linalg.matrix_rank(counts))
    if rank == len(elements):
        return
    null = np.linalg.svd(counts, full_matrices=True)[2][rank:]  # directions nothing fixes
    loose = [chemical_symbols[z] for z, v in zip(elements, np.abs(null).max(axis=0)) if v > 1e-8]
    absent = [chemical_symbols[z] for z, c in zip(elements, counts.sum(axis=0)) if c == 0]
    why = f"element(s) {', '.join(absent)} in no labelled training frame; " if absent else ""
    raise DataError(
        f"{where}least-squares E0s cannot separate element(s) {', '.join(loose)}: {why}the "
        f"compositions of the {len(counts)} labelled training frames have rank {rank} for "
        f"{len(elements)} elements (e.g. every frame has the same formula); give data.e0s as "
        "isolated-atom frames in the training file, an extxyz file of isolated atoms, a mapping "
        "element -> eV, or 'average'"
    )


def least_squares_energies(graphs, elements: Sequence[int], where="") -> dict:
    """E0 per element minimising sum_s (E_s - sum_i E0[z_i])^2 over labelled structures.

    Raises:
        DataError: the compositions do not determine every element's E0 (rank-deficient).
    """
    counts, energies = _compositions(graphs, elements)
    _inseparable(counts, elements, where)
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {z: float(e) for z, e in zip(elements, solution)}


def average_energies(graphs, elements: Sequence[int]) -> dict:
    """MACE's ``average``: the mean energy per atom of the labelled structures, for every
    element alike (a crude reference that never fails; the network learns the rest)."""
    counts, energies = _compositions(graphs, elements)
    mean = float(np.mean(energies / counts.sum(axis=1)))
    return {z: mean for z in elements}


def energy_scale_shift(graphs, atomic_energies: Sequence[float]):
    """shift = mean per-atom energy left after the E0s; scale = RMS force (else energy std).

    The network then learns a quantity of order one for any data set. ``graphs``: graph dicts
    or their :class:`GraphSummary` (as for every function here).
    """
    summary = as_summary(graphs, len(atomic_energies))
    labelled = summary.has_energy.astype(bool)
    e0 = np.asarray(atomic_energies, dtype=np.float64)
    residuals = (summary.energy - summary.counts @ e0)[labelled] / summary.num_atoms[labelled]
    shift = float(np.mean(residuals)) if len(residuals) else 0.0
    with_forces = summary.has_forces.astype(bool)
    if with_forces.any():
        components = 3 * summary.num_atoms[with_forces].sum()
        scale = float(np.sqrt(summary.forces_sq[with_forces].sum() / components))
    else:
        scale = float(np.std(residuals)) if len(residuals) > 1 else 1.0
    return shift, scale if scale > 1e-8 else 1.0


def average_num_neighbors(graphs, num_elements: int = 1) -> float:
    """Mean number of edges per atom over the training graphs."""
    summary = as_summary(graphs, num_elements)
    return max(float(summary.num_edges.sum()) / max(float(summary.num_atoms.sum()), 1.0), 1.0)


def target_statistics(graphs, per_atom: bool, num_elements: int = 1):
    """Mean and std [t] of the per-structure targets (divided by the atom count if ``per_atom``).

    A constant target gets std 1, so the model's output scale stays of order one.
    """
    summary = as_summary(graphs, num_elements)
    values = summary.targets
    if per_atom:
        values = values / summary.num_atoms[:, None]
    std = values.std(axis=0) if len(values) > 1 else np.ones(values.shape[1])
    std = np.where(std > 1e-12, std, 1.0)
    return values.mean(axis=0).tolist(), std.tolist()
