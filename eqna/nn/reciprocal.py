"""E(3)-invariant reciprocal-space (Ewald-like) atom features: a learned long-wavelength view.

Construction. Each atom carries ``C`` learned charges ``q_ic`` (a bias-free linear map of its
scalar features). Channel ``c`` has a learned radial filter in reciprocal space, ``f_c(|k|)``,
that vanishes smoothly at ``k_max``. The feature of atom ``i`` is the potential these charges
create at ``r_i`` through the band-limited kernel whose Fourier transform is ``f_c``:

    periodic (pbc on all three axes), k over the reciprocal lattice, k != 0:
        phi_ic = c0 / V * sum_{|k| < k_max} f_c(|k|) sum_j q_jc cos(k . (r_j - r_i))
    otherwise (molecules, clusters), the same kernel with the k-sum taken as an integral:
        phi_ic = c0 * sum_j q_jc F_c(|r_j - r_i|),
        F_c(r) = int_0^k_max f_c(kappa) j0(kappa r) kappa^2 dkappa / (2 pi^2)

``j0(x) = sin(x)/x`` is the average of ``exp(i k.r)`` over the directions of ``k``, so the
molecular form is the periodic form's infinite-box limit (the shell-averaged construction), and
one filter serves both. ``c0 = 6 pi^2 / k_max^3`` makes ``F_c(0)`` of order one.

Why it is exactly E(3)-invariant: only differences ``r_j - r_i`` enter (translation); for a
periodic cell ``k . (r_j - r_i) = 2 pi m . (s_j - s_i)`` in fractional coordinates ``s``, and
``|k|`` is a length, so rotating or reflecting atoms and cell together changes nothing; the
molecular kernel depends on distances only. Atoms may sit outside the cell (``k . T`` is a
multiple of 2 pi for lattice vectors ``T``). A 2x supercell keeps ``phi`` (1/V and the doubled
charge sum cancel; the new k vectors see zero structure factor). The envelope on ``|k|`` keeps
the energy smooth when a strained cell moves k vectors across ``k_max``, and ``k`` is
differentiable in the cell, so stress is the strain derivative.

Cost: periodic O(N * N_k) with N_k ~ V k_max^3 / (12 pi^2) k vectors in a half space (O(N^2)
at fixed density, with a small constant: 512 Si atoms and k_max = 1.2 give ~300 vectors);
molecules O(N^2) pairs. Mixed boundary conditions (slabs) are rejected: neither form is right.
"""

import math

import torch
from torch import nn

from eqna.data import keys
from eqna.nn.geometry import scatter_sum
from eqna.nn.radial import PolynomialCutoff

NUM_QUADRATURE = 32  # midpoint nodes of the kappa integral of the molecular kernel


class ReciprocalFilter(nn.Module):
    """f_c(kappa) = envelope(kappa) * sum_b W_bc exp(-((kappa - mu_b) / sigma)^2)."""

    def __init__(self, k_max: float, num_basis: int, channels: int):
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, k_max, num_basis))
        self.width = k_max / num_basis
        self.envelope = PolynomialCutoff(k_max, 6)
        self.weight = nn.Parameter(torch.randn(num_basis, channels) / math.sqrt(num_basis))

    def forward(self, kappa: torch.Tensor) -> torch.Tensor:  # [m] -> [m, channels]
        basis = torch.exp(-(((kappa[:, None] - self.centres) / self.width) ** 2))
        return (basis @ self.weight) * self.envelope(kappa)[:, None]


class ReciprocalFeatures(nn.Module):
    """Scalar atom features [n, scalar_dim] -> Ewald-like potentials phi [n, channels].

    Args:
        scalar_dim: width of the scalar (0e) features the charges are computed from.
        channels: number of learned charge/filter channels ``C``.
        num_basis: Gaussians in the reciprocal-space filter.
        k_max: reciprocal cutoff in 1/Å; wavelengths shorter than 2 pi / k_max are left to
            the local message passing.
    """

    def __init__(self, scalar_dim: int, channels: int = 8, num_basis: int = 8, k_max: float = 1.2):
        super().__init__()
        self.k_max = float(k_max)
        self.channels = channels
        self.charges = nn.Linear(scalar_dim, channels, bias=False)
        self.filter = ReciprocalFilter(self.k_max, num_basis, channels)
        self.c0 = 6.0 * math.pi**2 / self.k_max**3
        delta = self.k_max / NUM_QUADRATURE
        nodes = (torch.arange(NUM_QUADRATURE, dtype=torch.float64) + 0.5) * delta
        self.register_buffer("nodes", nodes.to(torch.get_default_dtype()))
        self.register_buffer("quad_weights", (delta * nodes**2 / (2 * math.pi**2)).float())

    def forward(self, scalars: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """scalars [n, scalar_dim] -> phi [n, channels]."""
        q = self.charges(scalars)  # [n, C]
        pbc = data[keys.PBC]
        periodic = pbc.all(dim=1)  # [g]
        if bool((pbc.any(dim=1) & ~periodic).any()):
            raise ValueError(
                "reciprocal features need structures periodic in all three directions or in "
                f"none; got pbc={pbc[pbc.any(dim=1) & ~periodic][0].tolist()}"
            )
        phi = q.new_zeros(q.shape)
        if bool(periodic.any()):
            phi = phi + self._periodic(q, data, periodic)
        if bool((~periodic).any()):
            phi = phi + self._finite(q, data, ~periodic)
        return self.c0 * phi

    def _periodic(self, q, data, periodic):
        pos, batch, cell = data[keys.POSITIONS], data[keys.BATCH], data[keys.CELL]
        graph, kvec = _half_space_kvectors(cell, periodic, self.k_max)  # [p], [p, 3]
        atom, pair_k = _atoms_of_graphs(graph, data[keys.NUM_ATOMS])
        phase = (kvec[pair_k] * pos[atom]).sum(-1)  # [a]
        cos, sin = torch.cos(phase)[:, None], torch.sin(phase)[:, None]  # [a, 1]
        s_cos = scatter_sum(cos * q[atom], pair_k, kvec.shape[0])  # [p, C] structure factor
        s_sin = scatter_sum(sin * q[atom], pair_k, kvec.shape[0])
        filt = self.filter(kvec.norm(dim=-1))  # [p, C]
        # Re(conj(e^{ik.r_i}) S(k)) = sum_j q_j cos(k.(r_j - r_i)); x2 for the -k half space
        terms = (cos * s_cos[pair_k] + sin * s_sin[pair_k]) * filt[pair_k]  # [a, C]
        volume = torch.linalg.det(cell).abs()
        volume = torch.where(periodic, volume, torch.ones_like(volume))[batch]  # [n]
        return 2.0 * scatter_sum(terms, atom, q.shape[0]) / volume[:, None]

    def _finite(self, q, data, finite):
        pos, batch = data[keys.POSITIONS], data[keys.BATCH]
        kernel_weights = self.quad_weights[:, None] * self.filter(self.nodes)  # [Q, C]
        centre, other = _pairs_within_graphs(batch, data[keys.NUM_ATOMS], finite)
        r = (pos[other] - pos[centre]).norm(dim=-1)  # [e2], i != j so the norm is smooth
        j0 = torch.sinc(r[:, None] * self.nodes / math.pi)  # [e2, Q]
        phi = scatter_sum((j0 @ kernel_weights) * q[other], centre, q.shape[0])
        self_term = q * kernel_weights.sum(0)  # F_c(0) = sum_q w_q f_c(kappa_q)
        return phi + self_term * finite[batch][:, None]


def _half_space_kvectors(cell: torch.Tensor, periodic: torch.Tensor, k_max: float):
    """Reciprocal lattice vectors 0 < |k| < k_max, one of each +-k pair, of the periodic graphs.

    Returns the graph of each vector [p] and the vectors [p, 3] (differentiable in ``cell``).
    """
    eye = torch.eye(3, dtype=cell.dtype, device=cell.device)
    safe_cell = torch.where(periodic[:, None, None], cell, eye)  # molecules: never inverted
    recip = 2.0 * math.pi * torch.linalg.inv(safe_cell).transpose(1, 2)  # [g, 3, 3]
    # rows of recip are b_j with a_i . b_j = 2 pi delta_ij
    # |m_a| = |k . a_a| / 2 pi <= k_max |a_a| / 2 pi bounds the integer grid along each axis
    lengths = cell.detach()[periodic].norm(dim=-1)  # [gp, 3]
    extent = torch.floor(k_max * lengths.max(dim=0).values / (2 * math.pi)).long().tolist()
    axes = [torch.arange(-n, n + 1, device=cell.device) for n in extent]
    m = torch.cartesian_prod(*axes).reshape(-1, 3)
    first = torch.where(m[:, 0] != 0, m[:, 0], torch.where(m[:, 1] != 0, m[:, 1], m[:, 2]))
    m = m[first > 0].to(cell.dtype)  # half space: the first non-zero index is positive
    k = torch.einsum("ma,gab->gmb", m, recip)  # [g, M, 3]
    inside = (k.detach().norm(dim=-1) < k_max) & periodic[:, None]
    graph, index = inside.nonzero(as_tuple=True)
    return graph, k[graph, index]


def _atoms_of_graphs(graph: torch.Tensor, num_atoms: torch.Tensor):
    """For items [p] belonging to graphs, all (atom, item) pairs of the same graph."""
    ptr = torch.cumsum(num_atoms, 0) - num_atoms  # first atom of each graph
    counts = num_atoms[graph]  # [p]
    item = torch.repeat_interleave(torch.arange(graph.shape[0], device=graph.device), counts)
    start = torch.cumsum(counts, 0) - counts  # first pair of each item
    offset = torch.arange(item.shape[0], device=graph.device) - start[item]
    return ptr[graph][item] + offset, item


def _pairs_within_graphs(batch: torch.Tensor, num_atoms: torch.Tensor, selected: torch.Tensor):
    """All ordered pairs (i, j), i != j, of atoms in the same selected graph: ([e2], [e2])."""
    atoms = torch.nonzero(selected[batch]).squeeze(-1)  # [n_sel]
    other, centre_slot = _atoms_of_graphs(batch[atoms], num_atoms)
    centre = atoms[centre_slot]
    keep = other != centre
    return centre[keep], other[keep]
