"""Trace an eqna potential's energy, forces and stress into one ``torch.export`` program.

Forces and stress are derivatives taken by autograd. ``torch.export`` cannot follow
``torch.autograd.grad`` through every e3nn operation (torch 2.13), so the computation is first
traced at the ATen level with ``make_fx`` (the backward pass becomes ordinary operations in the
graph), then exported with the number of atoms and of edges as dynamic dimensions. The result
has no Python control flow left: what the trace saw is what every input gets, so
:func:`trace_potential` traces on a structure whose sizes are unlike any fixed dimension (no
duck-sizing coincidences) and the export step checks that both sizes stayed symbolic.
"""

import copy

import numpy as np
import torch
import torch.fx.experimental._config as fx_config
from ase import Atoms
from torch import nn
from torch.fx.experimental.proxy_tensor import make_fx

from eqna.data import keys
from eqna.data.collate import collate, to_device
from eqna.models.interface import AtomisticModel
from eqna.nn.neural_atoms import freeze_pruning
from eqna.nn.reciprocal import ReciprocalFeatures

OUTPUTS = (keys.ENERGY, keys.ATOMIC_ENERGIES, keys.FORCES, keys.VIRIAL, keys.STRESS)
PER_ATOM = {keys.POSITIONS, keys.ATOMIC_NUMBERS, keys.NODE_TYPES, keys.BATCH}
PER_EDGE = {keys.EDGE_CELL_SHIFT: 0, keys.EDGE_INDEX: 1}
MIN_ATOMS = MIN_EDGES = 2  # sizes 0 and 1 are specialised by tracing


class UnsupportedForExport(ValueError):
    """The model cannot be exported (a property model, or a data-dependent architecture)."""


class _Potential(nn.Module):
    """Flat tensors in (``inputs`` order), the potential's outputs out (``outputs`` order)."""

    def __init__(self, model: AtomisticModel, inputs: list[str], atomic_virial: bool):
        super().__init__()
        self.model, self.inputs, self.atomic_virial = model, inputs, atomic_virial
        self.outputs = OUTPUTS + ((keys.ATOMIC_VIRIAL,) if atomic_virial else ())

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(dict(zip(self.inputs, tensors)), True, self.atomic_virial)
        return tuple(out[key] for key in self.outputs)


def check_exportable(model: AtomisticModel) -> None:
    """Raises UnsupportedForExport with the reason, or returns."""
    if not model.is_potential:
        raise UnsupportedForExport(
            f"a {model.output} model predicts one value per structure; export is for "
            "potentials (energy, forces, stress)"
        )
    if any(isinstance(m, ReciprocalFeatures) for m in model.modules()):
        raise UnsupportedForExport(
            "a reciprocal-space model picks its k-vectors from the cell at run time (their "
            "number depends on the data), which a traced program cannot follow; run it eagerly"
        )


def example_structure(elements: list[int], r_max: float, seed: int = 0) -> Atoms:
    """Seven atoms of the model's elements in a periodic triclinic cell, so cell, shifts and
    every element are exercised and no size equals a fixed dimension of the inputs."""
    rng = np.random.default_rng(seed)
    length = max(4.0, 0.8 * r_max)
    cell = length * (np.eye(3) + 0.1 * rng.normal(size=(3, 3)))
    numbers = [elements[k % len(elements)] for k in range(7)]
    atoms = Atoms(numbers=numbers, scaled_positions=rng.random((7, 3)), cell=cell, pbc=True)
    # keep atoms apart (>= 1.2 Å) so the geometry is an ordinary one
    while True:
        d = atoms.get_all_distances(mic=True)[np.triu_indices(7, 1)]
        if d.min() > 1.2:
            return atoms
        atoms.set_scaled_positions(rng.random((7, 3)))


def trace_potential(
    model: AtomisticModel, atomic_virial: bool = False
) -> tuple[torch.export.ExportedProgram, list[str], tuple[str, ...]]:
    """The potential as an ExportedProgram with dynamic numbers of atoms and edges.

    Args:
        model: an eval-mode potential in the dtype and on the device to export (a deep copy
            is traced; neural-atom pruning is frozen at the model's current gates).
        atomic_virial: also output the per-atom virial [n, 3, 3].

    Returns:
        (program, input keys in argument order, output keys in result order).

    Raises:
        UnsupportedForExport: see :func:`check_exportable`.
    """
    check_exportable(model)
    model = copy.deepcopy(model).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    freeze_pruning(model)
    atoms = example_structure(model.elements, model.r_max)
    graph = to_device(collate([model.graph_spec.graph(atoms)]), _device(model), model.dtype)
    inputs = sorted(graph)
    wrapper = _Potential(model, inputs, atomic_virial)
    args = tuple(graph[k] for k in inputs)
    with fx_config.patch(use_duck_shape=False):
        traced = make_fx(wrapper, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*args)
    atoms_dim = torch.export.Dim("atoms", min=MIN_ATOMS)
    edges_dim = torch.export.Dim("edges", min=MIN_EDGES)
    dynamic = []
    for key in inputs:
        if key in PER_ATOM:
            dynamic.append({0: atoms_dim})
        elif key in PER_EDGE:
            dynamic.append({PER_EDGE[key]: edges_dim})
        else:
            dynamic.append(None)
    program = torch.export.export(traced, args, dynamic_shapes=tuple(dynamic), strict=False)
    return program, inputs, wrapper.outputs


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
