"""Forces, virial and stress of any energy model, by autograd on positions and a strain."""

import torch
from torch import nn

from eqna.data import keys


class ForceStressOutput(nn.Module):
    """Wraps an energy model: forces = -dE/dr, virial = -dE/d(strain), stress = -virial / V.

    The strain is symmetric and applied to positions and cell together, so the stress is the
    true strain derivative (ASE sign: positive = tensile). Stress is reported for graphs that
    are periodic in all three directions and zero otherwise. The autograd graph is kept
    (``create_graph``) only while training, where the loss differentiates the forces again.
    """

    def __init__(self, energy_model: nn.Module):
        super().__init__()
        self.energy_model = energy_model

    def forward(
        self, data: dict[str, torch.Tensor], compute_stress: bool = True
    ) -> dict[str, torch.Tensor]:
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
        out = self.energy_model(data)
        grads = torch.autograd.grad(
            out[keys.ENERGY].sum(), inputs, create_graph=self.training, allow_unused=True
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
