"""Statistics computed once from the training data and stored in the model."""

from collections.abc import Sequence

import numpy as np
import torch
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


def _compositions(graphs: Sequence[dict], elements: Sequence[int]):
    """Element counts [s, k] and energies [s] of the structures with an energy label."""
    counts, energies = [], []
    for g in graphs:
        if bool(g[keys.HAS_ENERGY]):
            counts.append(np.bincount(g[keys.NODE_TYPES].numpy(), minlength=len(elements)))
            energies.append(float(g[keys.ENERGY]))
    if not counts:
        raise DataError("E0s from the training data need structures with energies")
    return np.array(counts, float), np.array(energies)


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


def least_squares_energies(graphs: Sequence[dict], elements: Sequence[int], where="") -> dict:
    """E0 per element minimising sum_s (E_s - sum_i E0[z_i])^2 over labelled structures.

    Raises:
        DataError: the compositions do not determine every element's E0 (rank-deficient).
    """
    counts, energies = _compositions(graphs, elements)
    _inseparable(counts, elements, where)
    solution, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {z: float(e) for z, e in zip(elements, solution)}


def average_energies(graphs: Sequence[dict], elements: Sequence[int]) -> dict:
    """MACE's ``average``: the mean energy per atom of the labelled structures, for every
    element alike (a crude reference that never fails; the network learns the rest)."""
    counts, energies = _compositions(graphs, elements)
    mean = float(np.mean(energies / counts.sum(axis=1)))
    return {z: mean for z in elements}


def energy_scale_shift(graphs: Sequence[dict], atomic_energies: Sequence[float]):
    """shift = mean per-atom energy left after the E0s; scale = RMS force (else energy std).

    The network then learns a quantity of order one for any data set.
    """
    e0 = torch.tensor(atomic_energies, dtype=torch.float64)
    residuals, forces = [], []
    for g in graphs:
        if bool(g[keys.HAS_ENERGY]):
            n = g[keys.NODE_TYPES].shape[0]
            residuals.append((float(g[keys.ENERGY]) - float(e0[g[keys.NODE_TYPES]].sum())) / n)
        if bool(g[keys.HAS_FORCES]):
            forces.append(g[keys.FORCES].reshape(-1))
    shift = float(np.mean(residuals)) if residuals else 0.0
    if forces:
        scale = float(torch.cat(forces).pow(2).mean().sqrt())
    else:
        scale = float(np.std(residuals)) if len(residuals) > 1 else 1.0
    return shift, scale if scale > 1e-8 else 1.0


def average_num_neighbors(graphs: Sequence[dict]) -> float:
    """Mean number of edges per atom over the training graphs."""
    edges = sum(g[keys.EDGE_INDEX].shape[1] for g in graphs)
    atoms = sum(g[keys.NODE_TYPES].shape[0] for g in graphs)
    return max(edges / max(atoms, 1), 1.0)


def target_statistics(graphs: Sequence[dict], per_atom: bool) -> tuple[list[float], list[float]]:
    """Mean and std [t] of the per-structure targets (divided by the atom count if ``per_atom``).

    A constant target gets std 1, so the model's output scale stays of order one.
    """
    values = []
    for g in graphs:
        y = g[keys.PROPERTY].reshape(-1).double()
        values.append(y / g[keys.NODE_TYPES].shape[0] if per_atom else y)
    stacked = torch.stack(values)  # [structures, t]
    std = stacked.std(dim=0, unbiased=False) if len(values) > 1 else torch.ones(stacked.shape[1])
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return stacked.mean(dim=0).tolist(), std.tolist()
