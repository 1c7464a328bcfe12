"""Checks that structures in a batch and far-apart fragments do not talk to each other.

NequIP's ``test_large_separation`` and ``test_cross_frame_grad`` in eqna's form: any
:class:`eqna.models.AtomisticModel` (potential or property model), plain ``ase.Atoms``.
"""

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from eqna.data import keys
from eqna.data.collate import collate, to_device
from eqna.testing.model_checks import compare_outputs, model_dtype_device, predict


def check_cross_frame_gradients(
    model, structures: Sequence[Atoms], dtype: torch.dtype = torch.float64
) -> None:
    """In one batch, each structure's output has exactly zero gradient with respect to the
    positions of every other structure (no leak through pooling, attention or batch norm)."""
    if len(structures) < 2:
        raise ValueError("cross-frame gradients need at least two structures")
    _, device = model_dtype_device(model)
    batch = to_device(collate([model.graph_spec.graph(a) for a in structures]), device, dtype)
    positions = batch[keys.POSITIONS].detach().requires_grad_(True)
    batch[keys.POSITIONS] = positions
    out = model.network(batch)
    per_graph = out[keys.ENERGY] if model.is_potential else out[keys.PROPERTY].sum(dim=-1)
    ptr = batch[keys.PTR].tolist()
    for g in range(len(structures)):
        (grad,) = torch.autograd.grad(per_graph[g], positions, retain_graph=True)
        others = torch.ones(len(positions), dtype=torch.bool, device=positions.device)
        others[ptr[g] : ptr[g + 1]] = False
        leak = float(grad[others].abs().max()) if bool(others.any()) else 0.0
        if leak != 0.0:
            raise AssertionError(
                f"structure {g} ({structures[g].get_chemical_formula()}) depends on the "
                f"positions of other structures in its batch: max |gradient| {leak:.3e}"
            )


def separated(first: Atoms, second: Atoms, gap: float) -> Atoms:
    """``first`` and ``second`` in one free structure, their closest atoms ``gap`` Å apart."""
    a, b = first.copy(), second.copy()
    a.pbc = b.pbc = False
    a.cell = b.cell = np.zeros((3, 3))
    shift = a.positions[:, 0].max() - b.positions[:, 0].min() + gap
    b.positions += [shift, 0.0, 0.0]
    return a + b


def check_large_separation(
    model,
    first: Atoms,
    second: Atoms,
    dtype: torch.dtype = torch.float64,
    tol: float = 1e-10,
) -> float:
    """Two fragments farther apart than r_max: energy, per-atom energies and forces of the
    whole are those of the parts (a strictly local potential only; neural atoms and the
    reciprocal view couple fragments beyond the cutoff by design)."""
    if not model.is_potential:
        raise ValueError("large separation is a check of potentials")
    whole = separated(first, second, gap=model.r_max + 2.0)
    whole_out, first_out, second_out = predict(model, [whole, first, second], dtype)
    parts = {
        keys.ENERGY: first_out[keys.ENERGY] + second_out[keys.ENERGY],
        keys.ATOMIC_ENERGIES: np.concatenate(
            [first_out[keys.ATOMIC_ENERGIES], second_out[keys.ATOMIC_ENERGIES]]
        ),
        keys.FORCES: np.concatenate([first_out[keys.FORCES], second_out[keys.FORCES]]),
    }
    what = f"{first.get_chemical_formula()} + {second.get_chemical_formula()} far apart"
    return compare_outputs({k: whole_out[k] for k in parts}, parts, tol, what)
