"""Radial basis functions and the smooth cutoff envelope."""

import math

import torch
from torch import nn


class PolynomialCutoff(nn.Module):
    """Envelope that goes to zero at ``r_max`` with ``p`` continuous derivatives (DimeNet)."""

    def __init__(self, r_max: float, p: int = 6):
        super().__init__()
        self.r_max = float(r_max)
        self.p = float(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:  # [e] -> [e]
        x = r / self.r_max
        p = self.p
        envelope = (
            1.0
            - (p + 1.0) * (p + 2.0) / 2.0 * x.pow(p)
            + p * (p + 2.0) * x.pow(p + 1.0)
            - p * (p + 1.0) / 2.0 * x.pow(p + 2.0)
        )
        return envelope * (x < 1.0)


class BesselBasis(nn.Module):
    """sqrt(2/r_max) sin(n pi r / r_max) / r, with learnable frequencies (NequIP)."""

    def __init__(self, r_max: float, num_basis: int = 8, trainable: bool = True):
        super().__init__()
        self.r_max = float(r_max)
        self.prefactor = math.sqrt(2.0 / self.r_max)
        freqs = torch.arange(1, num_basis + 1, dtype=torch.get_default_dtype()) * math.pi
        self.frequencies = nn.Parameter(freqs / self.r_max, requires_grad=trainable)

    def forward(self, r: torch.Tensor) -> torch.Tensor:  # [e] -> [e, num_basis]
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies * r) / r


class RadialEmbedding(nn.Module):
    """Bessel basis times the polynomial envelope: smooth edge features that vanish at r_max."""

    def __init__(self, r_max: float, num_basis: int = 8, polynomial_p: int = 6):
        super().__init__()
        self.basis = BesselBasis(r_max, num_basis)
        self.cutoff = PolynomialCutoff(r_max, polynomial_p)
        self.num_basis = num_basis

    def forward(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the embedding [e, num_basis] and the envelope [e]."""
        envelope = self.cutoff(r)
        return self.basis(r) * envelope.unsqueeze(-1), envelope
