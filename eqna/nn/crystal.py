"""Invariant crystal-graph convolutions: CGCNN's gated convolution and an invertible coupling.

Kernels take plain tensors: node features ``h`` [n, f], ``edge_index`` [2, e] (row 0 centre i,
row 1 neighbour j), edge features ``edge_attr`` [e, b] and the cutoff ``envelope`` [e]. Messages
are multiplied by the envelope, so an edge contributes nothing, smoothly, at the cutoff.
"""

import torch
from torch import nn

from eqna.nn.geometry import scatter_sum

NORMALIZATIONS = ("batch", "layer", "none")


def make_norm(kind: str, dim: int) -> nn.Module:
    """BatchNorm1d (CGCNN), LayerNorm, or identity over the feature dimension."""
    if kind == "batch":
        return nn.BatchNorm1d(dim)
    if kind == "layer":
        return nn.LayerNorm(dim)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"model.normalization: unknown {kind!r}; choose from {NORMALIZATIONS}")


class GatedMessages(nn.Module):
    """m_i = norm(sum_j u(r_ij) sigmoid(z W_f + b_f) * softplus(z W_s + b_s)), z = [x_i, x_j, e_ij].

    The CGCNN filter (Xie & Grossman, PRL 120, 145301, 2018, eq. 5) on features of width
    ``node_dim``; ``out_dim`` is the message width.
    """

    def __init__(self, node_dim: int, edge_dim: int, out_dim: int, normalization: str):
        super().__init__()
        self.linear = nn.Linear(2 * node_dim + edge_dim, 2 * out_dim)
        self.norm_edges = make_norm(normalization, 2 * out_dim)
        self.norm_sum = make_norm(normalization, out_dim)

    def forward(
        self,
        x: torch.Tensor,  # [n, node_dim]
        edge_index: torch.Tensor,  # [2, e]
        edge_attr: torch.Tensor,  # [e, edge_dim]
        envelope: torch.Tensor,  # [e]
    ) -> torch.Tensor:  # [n, out_dim]
        centre, neighbour = edge_index
        z = torch.cat([x[centre], x[neighbour], edge_attr], dim=-1)  # [e, 2 node_dim + edge_dim]
        gate, core = self.norm_edges(self.linear(z)).chunk(2, dim=-1)  # [e, out_dim] each
        messages = torch.sigmoid(gate) * nn.functional.softplus(core) * envelope.unsqueeze(-1)
        return self.norm_sum(scatter_sum(messages, centre, x.shape[0]))


class CGConv(nn.Module):
    """CGCNN convolution: v_i <- softplus(v_i + m_i) with the gated messages m_i [n, f]."""

    def __init__(self, dim: int, edge_dim: int, normalization: str = "batch"):
        super().__init__()
        self.messages = GatedMessages(dim, edge_dim, dim, normalization)

    def forward(self, h, edge_index, edge_attr, envelope):  # [n, f] -> [n, f]
        return nn.functional.softplus(h + self.messages(h, edge_index, edge_attr, envelope))


class AffineCouplingConv(nn.Module):
    """Invertible message passing: a RealNVP affine coupling conditioned on the graph.

    Features [n, 2d] are split into halves (a, b). Messages m_i are computed from the a-halves of
    i and its neighbours and the edge features only, so for a fixed graph

        b' = b * exp(s(a_i, m_i)) + t(a_i, m_i),    output [b', a]   (halves swap roles)

    is exactly invertible: a is untouched, hence m, s and t can be recomputed from the output.
    ``s = s_max tanh(.)`` bounds the scale; log|det d out / d in| = sum_i sum_c s_ic (per atom,
    returned by :meth:`forward`).
    """

    def __init__(self, dim: int, edge_dim: int, hidden: int, normalization: str = "layer"):
        super().__init__()
        if dim % 2:
            raise ValueError(f"model.num_channels: a coupling layer needs an even width, got {dim}")
        half = dim // 2
        self.half = half
        self.messages = GatedMessages(half, edge_dim, half, normalization)
        self.conditioner = nn.Sequential(
            nn.Linear(2 * half, hidden), nn.SiLU(), nn.Linear(hidden, 2 * half)
        )
        nn.init.zeros_(self.conditioner[-1].weight)  # start at the identity map
        nn.init.zeros_(self.conditioner[-1].bias)
        self.s_max = 2.0

    def _scale_shift(self, a, edge_index, edge_attr, envelope):
        m = self.messages(a, edge_index, edge_attr, envelope)  # [n, half]
        s, t = self.conditioner(torch.cat([a, m], dim=-1)).chunk(2, dim=-1)
        return self.s_max * torch.tanh(s / self.s_max), t  # [n, half] each

    def forward(self, h, edge_index, edge_attr, envelope):
        """[n, 2d] -> ([n, 2d], logdet [n])."""
        a, b = h[:, : self.half], h[:, self.half :]
        s, t = self._scale_shift(a, edge_index, edge_attr, envelope)
        return torch.cat([b * torch.exp(s) + t, a], dim=-1), s.sum(dim=-1)

    def inverse(self, out, edge_index, edge_attr, envelope):
        """The input features [n, 2d] that :meth:`forward` maps to ``out``."""
        b_new, a = out[:, : self.half], out[:, self.half :]
        s, t = self._scale_shift(a, edge_index, edge_attr, envelope)
        return torch.cat([a, (b_new - t) * torch.exp(-s)], dim=-1)
