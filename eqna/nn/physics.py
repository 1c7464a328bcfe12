"""Forces, virial and stress of any energy network, by autograd on positions and a strain."""

import torch
from torch import nn

from eqna.data import keys


def energy_derivatives(
    network: nn.Module,
    data: dict[str, torch.Tensor],
    compute_stress: bool,
    create_graph: bool,
) -> dict[str, torch.Tensor]:
    """Run ``network`` and add forces = -dE/dr and, with ``compute_stress``, virial and stress.

    The strain is symmetric and applied to positions and cell together, so the stress is the
    true strain derivative (ASE sign: positive = tensile): virial = -dE/d(strain), stress =
    -virial / V. Stress is reported for graphs periodic in all three directions and zero
    otherwise. ``create_graph`` keeps the autograd graph, which training needs because the
    loss differentiates the forces again.
    """
    data = dict(data)
    pos = data[keys.POSITIONS]
    num_graphs = data[keys.NUM_ATOMS].shape[0]
    strain = torch.zeros(num_graphs, 3, 3, dtype=pos.dtype, device=pos.device)
    pos = pos.detach().requires_grad_(True)
    data[keys.POSITIONS] = pos
    inputs = [pos]
    if compute_stress:
        strain.requires_grad_(True)
        inputs.append(strain)
        sym = 0.5 * (strain + strain.transpose(1, 2))
        batch = data[keys.BATCH]
        data[keys.POSITIONS] = pos + torch.einsum("ni,nij->nj", pos, sym[batch])
        data[keys.CELL] = data[keys.CELL] + data[keys.CELL] @ sym
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
    return out
