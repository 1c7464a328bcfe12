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
    """E_i = E0[z_i] + scale * e_i + b[z_i] * tanh(c_i); E0 and scale fixed from the data.

    ``c_i`` is the envelope-weighted coordination sum_j u(r_ij): the binding energy b switches
    on smoothly as neighbours come within the cutoff, so an isolated atom (e_i = 0, c_i = 0)
    has exactly its reference energy E0. b is learned per element, starting from the data's
    mean energy per atom (``shift``): the network has no biases, and a per-atom energy offset is
    otherwise slow to learn under a force-dominated loss.
    """

    def __init__(self, atomic_energies: list[float], scale: float, shift: float):
        super().__init__()
        # float64 so that a float64 model keeps E0s of ~1e4 eV exact; .to(dtype) casts later
        self.register_buffer("atomic_energies", torch.tensor(atomic_energies, dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.float64))
        self.binding = nn.Parameter(
            torch.full((len(atomic_energies),), float(shift), dtype=torch.float64)
        )

    def forward(
        self,
        e: torch.Tensor,  # [n] network output
        coordination: torch.Tensor,  # [n] sum of cutoff envelopes
        node_types: torch.Tensor,  # [n]
    ) -> torch.Tensor:  # [n] eV
        binding = self.binding[node_types] * torch.tanh(coordination)
        return self.atomic_energies[node_types] + self.scale * e + binding
