"""Per-atom energy readout and the per-element reference energies."""

import torch
from e3nn import o3
from torch import nn


class ScalarReadout(nn.Module):
    """Scalars of the node features -> one number per atom through a small gated MLP."""

    def __init__(self, irreps_in: o3.Irreps, hidden: int):
        super().__init__()
        self.linear_in = o3.Linear(o3.Irreps(irreps_in), o3.Irreps(f"{hidden}x0e"))
        self.act = nn.SiLU()
        self.linear_out = o3.Linear(o3.Irreps(f"{hidden}x0e"), o3.Irreps("0e"))

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [n, irreps_in] -> [n]
        return self.linear_out(self.act(self.linear_in(h))).squeeze(-1)


class AtomicEnergyShift(nn.Module):
    """E_i = scale * e_i + shift + E0[type_i]; scale, shift and E0 are fixed from the data."""

    def __init__(self, atomic_energies: list[float], scale: float, shift: float):
        super().__init__()
        self.register_buffer("atomic_energies", torch.tensor(atomic_energies))
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("shift", torch.tensor(float(shift)))

    def forward(self, e: torch.Tensor, node_types: torch.Tensor) -> torch.Tensor:  # [n] -> [n]
        return self.scale * e + self.shift + self.atomic_energies[node_types]
