"""Fourier-space clustering of atoms into neural atoms, with a number of clusters per structure.

The third assignment of :class:`eqna.nn.neural_atoms.NeuralAtoms` (``assignment: fourier``),
beside learned prototypes with gates. Per structure, with h_i^s the scalar features of atom i:

1. Spectral signature. Each atom carries C learned charges q_i = W_q h_i^s. Its local
   spectrum is the orientation-averaged (Debye) structure factor of the charges around it,
   at M wave numbers k_m = m k_max / M (``signature: local``):

       S_i(k_m, c) = q_ic + sum_{j in N(i)} u(r_ij) q_jc j0(k_m r_ij),   j0(x) = sin(x) / x,

   over the neighbours of the radius graph, u its smooth cutoff envelope. j0 is the average
   of exp(i k . r) over the directions of k, so S is E(3)-invariant and smooth. With
   ``signature: reciprocal`` the whole-structure view phi of :mod:`eqna.nn.reciprocal` (the
   Fourier transform of the charge density, filtered per band and read at each atom) is used
   instead: long-ranged, for molecules and 3D-periodic cells (not slabs).
   z_i = W_z [h_i^s, S_i] (p numbers), normalised z^_i = z_i / sqrt(|z_i|^2 + 1).
2. Similarity. d2_ij = |z^_i - z^_j|^2 and M_ij = sigmoid((tau^2 - d2_ij) / T): about 1 for
   atoms closer than the threshold tau in signature space, about 0 beyond, smooth over T.
3. Clustering by threshold. Each atom's leadership is the softmax of a learned score
   s_i = w . h_i^s over the atoms within the threshold of it,

       l_i = exp(s_i / T_s) / sum_j M_ij exp(s_j / T_s),

   which tends to 1 for the highest-scored atom of its neighbourhood and to 0 for the others
   as T_s -> 0 (non-maximum suppression). The number of clusters of a structure is
   K = sum_i l_i: exactly the number of groups when the atoms fall into groups that are
   alike within and unlike between (then it does not depend on the scores), and never below
   1, since M_ij <= 1. It follows from the threshold and the structure, not from a fixed or
   globally learned K.
4. Assignment. Slot j of a structure is the cluster led by atom j, weighted by l_j:
   pooling Y_j = sum_i M_ij H_i / sum_i M_ij (the mean over atoms within tau of the leader);
   retrieval A_ij = l_j M_ij / (sum_j' l_j' M_ij' + eps); l_j enters the attention keys as
   log l_j, as a gate does, so a slot that leads nothing is invisible. Pooling, gated
   exchange and retrieval downstream are those of the prototype assignment.

Every step is a smooth function of the positions (and the cell), so energies stay continuous
and forces conservative while K changes. ``hard: true`` uses steps instead (exact threshold
clustering: leaders are the atoms scored highest within tau, ties shared): piecewise constant
in the positions, so it is for property and classification models only, and a potential
refuses it.

Cost per structure of n atoms and E edges: signature O(E M C) (reciprocal: that module's);
similarity, leadership, pooling and retrieval O(n^2 (p + c)) for c pooled channels. Dense
[g, n_max, n_max] blocks: quadratic in the atoms of one structure, which suits molecules and
cells of up to a few hundred atoms.
"""

import torch
from torch import nn

from eqna.data import keys
from eqna.nn.geometry import edge_vectors, scatter_sum
from eqna.nn.radial import PolynomialCutoff
from eqna.nn.reciprocal import ReciprocalFeatures

SIGNATURES = ("local", "reciprocal")
_EPS = 1e-9  # retrieval denominator: only reached by an atom no hard leader covers


class FourierClusters(nn.Module):
    """Scalar features [n, d] -> per-structure soft threshold clustering (see module doc).

    Args:
        scalar_dim: width d of the scalar features.
        cutoff: radius of the graph, Å (the envelope u of the local spectrum).
        threshold: tau, the signature distance under which two atoms share a cluster.
        temperature: T, the width of the similarity step (in squared distance).
        score_temperature: T_s, the temperature of the leadership softmax.
        hard: step functions instead of sigmoids (not for potentials).
        signature: ``local`` (Debye spectrum of the neighbours) or ``reciprocal``.
        channels: C learned charges.
        num_k: M wave numbers (local).
        k_max: largest wave number, 1/Å (local: M of them up to it; reciprocal: its cutoff).
        dim: p, width of the signature z.
    """

    def __init__(
        self,
        scalar_dim: int,
        cutoff: float,
        threshold: float = 0.5,
        temperature: float = 0.1,
        score_temperature: float = 1.0,
        hard: bool = False,
        signature: str = "local",
        channels: int = 8,
        num_k: int = 8,
        k_max: float = 4.0,
        dim: int = 16,
    ):
        super().__init__()
        if signature not in SIGNATURES:
            raise ValueError(f"fourier_signature must be one of {SIGNATURES}, got {signature!r}")
        positive = {"threshold": threshold, "temperature": temperature,
                    "score_temperature": score_temperature, "k_max": k_max}  # fmt: skip
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"fourier_{name} must be > 0, got {value}")
        self.threshold, self.temperature = float(threshold), float(temperature)
        self.score_temperature, self.hard = float(score_temperature), hard
        self.signature = signature
        if signature == "local":
            self.charges = nn.Linear(scalar_dim, channels, bias=False)
            self.register_buffer("k", torch.arange(1, num_k + 1) * (k_max / num_k))
            self.envelope = PolynomialCutoff(cutoff, 6)
            spectrum_dim = channels * num_k
        else:
            self.reciprocal = ReciprocalFeatures(scalar_dim, channels, num_k, k_max)
            spectrum_dim = channels
        self.project = nn.Linear(scalar_dim + spectrum_dim, dim, bias=False)
        # unit-variance weights (not 1/fan_in): signatures start at |z| ~ 1, where the
        # normalisation z / sqrt(|z|^2 + 1) and the threshold tau ~ 0.5 separate atoms
        nn.init.normal_(self.project.weight)
        self.score = nn.Linear(scalar_dim, 1, bias=False)

    def spectrum(self, h_s: torch.Tensor, data: dict) -> torch.Tensor:
        """The spectral part of the signature: [n, C M] (local) or [n, C] (reciprocal)."""
        if self.signature == "reciprocal":
            return self.reciprocal(h_s, data)
        q = self.charges(h_s)  # [n, C]
        centre, neighbour = data[keys.EDGE_INDEX]
        lengths = edge_vectors(data).norm(dim=-1)  # [e]
        j0 = torch.sinc(lengths[:, None] * self.k / torch.pi)  # [e, M], sin(kr)/(kr)
        weight = (self.envelope(lengths)[:, None] * j0)[:, None, :]  # [e, 1, M]
        edges = weight * q[neighbour][:, :, None]  # [e, C, M]
        spectrum = q[:, :, None] + scatter_sum(edges, centre, h_s.shape[0])  # [n, C, M]
        return spectrum.flatten(1)

    def _step(self, x: torch.Tensor, width: float) -> torch.Tensor:
        """sigmoid(x / width), or the step x > 0 (1/2 at 0) in hard mode."""
        if self.hard:
            return (x > 0).to(x.dtype) + 0.5 * (x == 0).to(x.dtype)
        return torch.sigmoid(x / width)

    def forward(self, h_s: torch.Tensor, data: dict, dense) -> dict[str, torch.Tensor]:
        """Clusters of each structure.

        Args:
            h_s: [n, d] scalar features.
            data: the graph batch.
            dense: ``to_dense``-like callable [n, c] -> [g, n_max, c] (zero padding).

        Returns:
            ``similarity`` M [g, n_max, n_max] (zero on padding), ``leaders`` l [g, n_max],
            ``retrieval`` A [g, n_max, n_max] and ``counts`` K [g].
        """
        z = self.project(torch.cat([h_s, self.spectrum(h_s, data)], dim=-1))  # [n, p]
        z = z / torch.sqrt(z.pow(2).sum(-1, keepdim=True) + 1.0)
        valid = dense(torch.ones_like(h_s[:, :1]))[..., 0]  # [g, n_max], 1 on real atoms
        z = dense(z)  # [g, n_max, p]
        square = z.pow(2).sum(-1)
        d2 = (square[:, :, None] + square[:, None, :] - 2 * z @ z.transpose(1, 2)).clamp_min(0)
        pairs = valid[:, :, None] * valid[:, None, :]
        similarity = self._step(self.threshold**2 - d2, self.temperature) * pairs
        score = dense(self.score(h_s))[..., 0] / self.score_temperature  # [g, n_max]
        if self.hard:  # the highest-scored atoms within tau lead (ties share)
            best = torch.where(similarity > 0, score[:, None, :], -torch.inf).amax(-1)
            top = (score >= best).to(score.dtype) * valid
            leaders = top / (similarity * top[:, None, :]).sum(-1).clamp_min(1.0)
        else:  # softmax within each atom's neighbourhood; the shift cancels, per structure
            shift = torch.where(valid > 0, score, -torch.inf).amax(-1, keepdim=True).detach()
            weight = torch.exp(score - shift) * valid
            total = (similarity @ weight[..., None])[..., 0]  # >= weight_i on real atoms
            leaders = weight / total.clamp_min(torch.finfo(score.dtype).tiny)
        weighted = similarity * leaders[:, None, :]  # [g, i, j]
        retrieval = weighted / (weighted.sum(-1, keepdim=True) + _EPS)
        return {
            "similarity": similarity,
            "leaders": leaders,
            "retrieval": retrieval,
            "counts": leaders.sum(-1),
        }
