"""Edge-feature calculators: distance -> features, all multiplied by a smooth cutoff envelope.

``gaussian``: CGCNN's Gaussian distance expansion exp(-(r - mu_k)^2 / sigma^2) on a fixed grid;
``bessel``: sin(k pi r / r_max) / r with learnable frequencies (NequIP/DimeNet);
``atom_gaussian``: Gaussians with learned centres and widths for every unordered element pair.
Every kind vanishes at ``r_max`` with continuous derivatives, so energy models stay smooth when a
neighbour crosses the cutoff. An optional learned edge embedding (bias-free linear + SiLU, which
keeps zero at zero) maps the expansion to ``embedding_dim``.
"""

import torch
from torch import nn

from eqna.nn.radial import BesselBasis, PolynomialCutoff

EDGE_FEATURES = ("gaussian", "bessel", "atom_gaussian")


class GaussianExpansion(nn.Module):
    """exp(-(r - mu_k)^2 / width^2), mu_k on an even grid from 0 to r_max (CGCNN: step = width)."""

    def __init__(self, r_max: float, num_basis: int):
        super().__init__()
        centres = torch.linspace(0.0, r_max, num_basis)
        self.register_buffer("centres", centres)
        self.width = float(r_max) / max(num_basis - 1, 1)

    def forward(self, r: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:  # [e] -> [e, k]
        return torch.exp(-(((r.unsqueeze(-1) - self.centres) / self.width) ** 2))


class AtomPairGaussians(nn.Module):
    """Gaussians whose centres and widths are learned per unordered element pair (a, b).

    Starts from the CGCNN grid for every pair; widths are kept positive by a softplus.
    """

    def __init__(self, r_max: float, num_basis: int, num_elements: int):
        super().__init__()
        self.num_elements = num_elements
        grid = GaussianExpansion(r_max, num_basis)
        raw_width = torch.log(torch.expm1(torch.tensor(grid.width)))
        init = torch.cat([grid.centres, raw_width.expand(num_basis)])
        self.params = nn.Embedding(num_elements * num_elements, 2 * num_basis)
        with torch.no_grad():
            self.params.weight.copy_(init.expand(num_elements * num_elements, -1))
        self.num_basis = num_basis

    def forward(self, r: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        # r: [e], pair: [e, 2] element indices -> [e, k]; the sorted pair makes it symmetric
        low, high = pair.min(dim=1).values, pair.max(dim=1).values
        centre, raw_width = self.params(low * self.num_elements + high).split(self.num_basis, -1)
        width = nn.functional.softplus(raw_width) + 1e-3
        return torch.exp(-(((r.unsqueeze(-1) - centre) / width) ** 2))


class _Bessel(BesselBasis):
    def forward(self, r: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
        return super().forward(r)


class EdgeFeatures(nn.Module):
    """(lengths [e], element pairs [e, 2]) -> (features [e, out_dim], envelope [e])."""

    def __init__(
        self,
        kind: str,
        r_max: float,
        num_basis: int,
        num_elements: int,
        embedding_dim: int | None = None,
        polynomial_p: int = 6,
    ):
        super().__init__()
        if kind == "gaussian":
            self.expansion = GaussianExpansion(r_max, num_basis)
        elif kind == "bessel":
            self.expansion = _Bessel(r_max, num_basis)
        elif kind == "atom_gaussian":
            self.expansion = AtomPairGaussians(r_max, num_basis, num_elements)
        else:
            raise ValueError(
                f"model.edge_features: unknown kind {kind!r}; choose from {EDGE_FEATURES}"
            )
        self.kind = kind
        self.cutoff = PolynomialCutoff(r_max, polynomial_p)
        self.embedding = None
        if embedding_dim is not None:
            self.embedding = nn.Sequential(
                nn.Linear(num_basis, embedding_dim, bias=False), nn.SiLU()
            )
        self.out_dim = num_basis if embedding_dim is None else embedding_dim

    def forward(
        self, lengths: torch.Tensor, pair: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        envelope = self.cutoff(lengths)  # [e]
        features = self.expansion(lengths, pair) * envelope.unsqueeze(-1)  # [e, num_basis]
        if self.embedding is not None:
            features = self.embedding(features)
        return features, envelope
