"""Forces, virial and stress of any energy network, by autograd on positions and a strain."""

import torch
from torch import nn

from eqna.data import keys
from eqna.nn.geometry import edge_vectors


def energy_derivatives(
    network: nn.Module,
    data: dict[str, torch.Tensor],
    compute_stress: bool,
    create_graph: bool,
    atomic_virial: bool = False,
) -> dict[str, torch.Tensor]:
    """Run ``network`` and add forces = -dE/dr and, with ``compute_stress``, virial and stress.

    The strain is symmetric and applied to positions and cell together, so the stress is the
    true strain derivative (ASE sign: positive = tensile): virial = -dE/d(strain), stress =
    -virial / V. Stress is reported for graphs periodic in all three directions and zero
    otherwise. ``create_graph`` keeps the autograd graph, which training needs because the
    loss differentiates the forces again.

    ``atomic_virial`` adds the per-atom virial [n, 3, 3]: W_i = -1/2 sum over the edges at i
    (as centre or neighbour) of sym(r_ij ⊗ dE/dr_ij), read on a zero displacement of the edge
    vectors. It sums to the virial where the energy depends on positions only through edge
    vectors (every model but a reciprocal-space one).
    """
    data = dict(data)
    pos = data[keys.POSITIONS]
    num_graphs = data[keys.NUM_ATOMS].shape[0]
    strain = torch.zeros(num_graphs, 3, 3, dtype=pos.dtype, device=pos.device)
    pos = pos.detach().requires_grad_(True)
    data[keys.POSITIONS] = pos
    inputs = [pos]
    if atomic_virial:
        edges = data[keys.EDGE_INDEX].shape[1]
        data[keys.EDGE_DISPLACEMENT] = pos.new_zeros(edges, 3).requires_grad_(True)
    if compute_stress:
        strain.requires_grad_(True)
        inputs.append(strain)
        sym = 0.5 * (strain + strain.transpose(1, 2))
        batch = data[keys.BATCH]
        data[keys.POSITIONS] = pos + torch.einsum("ni,nij->nj", pos, sym[batch])
        data[keys.CELL] = data[keys.CELL] + data[keys.CELL] @ sym
    if atomic_virial:
        inputs.append(data[keys.EDGE_DISPLACEMENT])
    out = network(data)
    grads = torch.autograd.grad(
        out[keys.ENERGY].sum(), inputs, create_graph=create_graph, allow_unused=True
    )
    out[keys.FORCES] = -grads[0] if grads[0] is not None else torch.zeros_like(pos)
    if compute_stress:
        virial = -grads[1] if grads[1] is not None else torch.zeros_like(strain)
        cell = data[keys.CELL].detach()
        volume = torch.linalg.det(cell).abs()
        periodic = data[keys.PBC].all(dim=1) & (volume > 0)
        volume = torch.where(periodic, volume, torch.ones_like(volume))
        out[keys.VIRIAL] = virial
        out[keys.STRESS] = -virial / volume[:, None, None] * periodic[:, None, None]
    if atomic_virial:
        out[keys.ATOMIC_VIRIAL] = _atomic_virial(data, grads[-1], pos.shape[0])
    return out


def _atomic_virial(data, edge_gradient, num_atoms: int) -> torch.Tensor:
    """[n, 3, 3] each edge's -sym(r ⊗ dE/dr), half to each of its two atoms."""
    if edge_gradient is None:  # an energy without edges (isolated atoms)
        return data[keys.POSITIONS].new_zeros(num_atoms, 3, 3)
    probe = {k: v for k, v in data.items() if k != keys.EDGE_DISPLACEMENT}
    vectors = edge_vectors(probe).detach()  # [e, 3]
    tensor = -torch.einsum("ea,eb->eab", vectors, edge_gradient)
    tensor = 0.5 * (tensor + tensor.transpose(1, 2))  # [e, 3, 3]
    out = tensor.new_zeros(num_atoms, 3, 3)
    for end in data[keys.EDGE_INDEX]:
        out.index_add_(0, end, 0.5 * tensor)
    return out
