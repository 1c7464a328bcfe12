"""Adaptive neural atoms: project atoms onto gated neural atoms, exchange by attention, retrieve.

After Li et al., "Neural Atoms", ICLR 2024 (arXiv 2311.01276), Sec. 3, extended with learned
gates (an L1 penalty makes the number of neural atoms data-driven), pruning at inference, an
exactly E(3)-equivariant pooling of the non-scalar channels, and optional Ewald-like features
(:mod:`eqna.nn.reciprocal`). Per graph, with H the atom features (scalars H_s = the 0e part,
H_v = every other irrep, pooled channel by channel):

1. project   A = row-softmax(W_x X P^T / sqrt(p)), X = [H_s, phi]         [n, K_max]
2. gates     g = sigmoid(theta) in (0, 1)^K_max; A~ = A diag(g)
3. pool      Y = K_max / N_graph * A~^T H (a mean over atoms: a supercell gets the same neural
             atoms, so energies stay extensive and per-atom energies unchanged)
4. exchange  multi-head attention among the K neural atoms of a graph. Logits from invariants
             only (Y_s and smooth norms of Y_v's channels) plus log g_k on the keys, so a closed
             gate also removes that neural atom as a key. Scalars: residual MHA + MLP update.
             Vectors (equivariant pooling): the same weights mix the channel-linear W_v Y_v and
             a sigmoid of the updated scalars gates each channel. Invariant pooling exchanges
             scalars only and leaves the vector channels untouched.
5. retrieve  H_out = H + Linear(A~ Y') (+ Linear(phi) on the scalars when phi is used)

A is invariant, so pooling and retrieval commute with rotations; every update path is bias-free,
so zero features stay zero (an isolated atom keeps exactly its reference energy).

Pruning: in eval mode, neural atoms with g_k < prune_epsilon are dropped from pooling, attention
and retrieval (the layer computes with K_eff of them). The projection softmax still normalises
over all K_max prototypes (cost n * K_max * p, small), so pruning only removes terms
proportional to the pruned gates: the energy changes by O(sum of pruned g_k) and vanishes
linearly with them (tests/test_neural_atoms.py checks |dE| <= 5e-3 eV * sum of pruned g_k per
structure on random models, and the linear decay). The constant is model-dependent: training
can let the retrieval weights grow to compensate small gates, so a trained model's pruning cost
must be measured (``eqna-evaluate MODEL DATA --prune-epsilon 0`` vs the default).

Fourier assignment (``assignment: fourier``, :mod:`eqna.nn.fourier_clusters`) replaces steps
1-3: atoms are clustered per structure by a threshold on the distance between their spectral
signatures, so the number of neural atoms K differs between structures. Slot j is the cluster
led by atom j; its leadership l_j plays the gate (log l_j on the attention keys), pooling is
the mean over the cluster, and retrieval is the soft membership. Steps 4-5 are unchanged.
There are no prototypes, gates or pruning in this mode.
"""

import math
from typing import Literal

import torch
from e3nn import o3
from torch import nn

from eqna.data import keys
from eqna.nn.fourier_clusters import FourierClusters
from eqna.nn.reciprocal import ReciprocalFeatures

ASSIGNMENTS = ("prototypes", "fourier")


def split_scalars(irreps: o3.Irreps) -> tuple[list[int], list[int]]:
    """Indices of the 0e components and of all others in a flat ``irreps`` feature vector."""
    scalar, other = [], []
    for (_, ir), sl in zip(irreps, irreps.slices()):
        (scalar if ir == o3.Irrep("0e") else other).extend(range(sl.start, sl.stop))
    return scalar, other


def dense_slots(batch: torch.Tensor, num_atoms: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Row of each atom [n] in a zero-padded [g * n_max] layout, and n_max (atoms contiguous
    per graph, as collate makes them)."""
    first = torch.cumsum(num_atoms, 0) - num_atoms  # [g]
    # one graph (the calculator's case): n_max is n, a shape, which tracing (export) can
    # follow, where the value num_atoms.max() would be data-dependent
    max_atoms = batch.shape[0] if num_atoms.shape[0] == 1 else int(num_atoms.max())
    position = torch.arange(batch.shape[0], device=batch.device) - first[batch]
    return batch * max_atoms + position, max_atoms


def to_dense(x: torch.Tensor, slot: torch.Tensor, num_graphs: int, max_atoms: int):
    """[n, c] -> [g, n_max, c], zero rows for padding: graph sums become batched matmuls."""
    dense = x.new_zeros(num_graphs * max_atoms, x.shape[1]).index_copy(0, slot, x)
    return dense.view(num_graphs, max_atoms, x.shape[1])


class GatedAttention(nn.Module):
    """Multi-head attention among the neural atoms of each graph (step 4).

    Args:
        scalar_dim: width d of the pooled scalars.
        irreps_vec: irreps of the pooled non-scalar channels (empty for invariant pooling).
        num_heads: attention heads; the channels of each non-scalar irrep are split among them.
    """

    def __init__(self, scalar_dim: int, irreps_vec: o3.Irreps, num_heads: int):
        super().__init__()
        self.irreps_vec = o3.Irreps(irreps_vec)
        self.num_heads = num_heads
        self.head_dim = max(scalar_dim // num_heads, 1)
        num_vec = self.irreps_vec.num_irreps
        width = num_heads * self.head_dim
        self.query = nn.Linear(scalar_dim + num_vec, width)
        self.key = nn.Linear(scalar_dim + num_vec, width)
        self.value = nn.Linear(scalar_dim, width, bias=False)
        self.out = nn.Linear(width, scalar_dim, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(scalar_dim, scalar_dim, bias=False),
            nn.SiLU(),
            nn.Linear(scalar_dim, scalar_dim, bias=False),
        )
        if num_vec:
            self.value_vec = o3.Linear(self.irreps_vec, self.irreps_vec)
            self.vec_gate = nn.Linear(scalar_dim, num_vec)
            # one gate per channel, repeated over its 2l+1 components (e3nn's [mul, dim] layout)
            dims = torch.tensor([ir.dim for mul, ir in self.irreps_vec for _ in range(mul)])
            self.register_buffer("gate_index", torch.repeat_interleave(torch.arange(num_vec), dims))

    def _norms(self, y_vec: torch.Tensor) -> torch.Tensor:
        """Smooth channel norms sqrt(|v|^2 + 1) - 1: [g, K, dim] -> [g, K, num_irreps]."""
        norms = []
        for (mul, ir), sl in zip(self.irreps_vec, self.irreps_vec.slices()):
            v = y_vec[..., sl].reshape(*y_vec.shape[:-1], mul, ir.dim)
            norms.append(torch.sqrt(v.pow(2).sum(-1) + 1.0) - 1.0)
        return torch.cat(norms, dim=-1)

    def forward(self, y_s, y_vec, log_gates):
        """y_s [g, K, d], y_vec [g, K, dim_vec] or None, log_gates [K] (shared) or [g, K]
        (per structure) -> updated (y_s, y_vec)."""
        g, k, _ = y_s.shape
        inv = y_s if y_vec is None else torch.cat([y_s, self._norms(y_vec)], dim=-1)
        h, dh = self.num_heads, self.head_dim
        q = self.query(inv).view(g, k, h, dh).transpose(1, 2)  # [g, h, K, dh]
        key = self.key(inv).view(g, k, h, dh).transpose(1, 2)
        logits = q @ key.transpose(-1, -2) / math.sqrt(dh)  # [g, h, K, K]
        logits = logits + log_gates.reshape(-1, 1, 1, k)
        weights = torch.softmax(logits, dim=-1)
        value = self.value(y_s).view(g, k, h, dh).transpose(1, 2)
        mixed = (weights @ value).transpose(1, 2).reshape(g, k, h * dh)
        y_s = y_s + self.out(mixed)
        y_s = y_s + self.mlp(y_s)
        if y_vec is None:
            return y_s, None
        value_vec = self.value_vec(y_vec)
        parts = []
        for (mul, ir), sl in zip(self.irreps_vec, self.irreps_vec.slices()):
            v = value_vec[..., sl].reshape(g, k, h, mul // h, ir.dim)
            v = torch.einsum("ghqk,gkhcm->gqhcm", weights, v)
            parts.append(v.reshape(g, k, mul * ir.dim))
        gate = torch.sigmoid(self.vec_gate(y_s))[..., self.gate_index]  # [g, K, dim_vec]
        return y_s, y_vec + gate * torch.cat(parts, dim=-1)


class NeuralAtoms(nn.Module):
    """The neural-atom layer: [n, irreps_in] -> [n, irreps_in] residual update (see module doc).

    Args:
        irreps_in: atom feature irreps; must contain 0e scalars.
        num_neural_atoms: K_max, the most neural atoms per graph.
        pooling: "equivariant" pools and exchanges all irreps; "invariant" only the scalars.
        prototype_dim: width p of the projection prototypes.
        num_heads: attention heads; must divide the multiplicity of every non-scalar irrep
            when pooling is equivariant.
        learn_gates: False freezes every gate open (g = 1): the fixed-K ablation.
        gate_init: initial gate value, in (0, 1).
        prune_epsilon: in eval mode, neural atoms with a gate below this are pruned (0: never).
        reciprocal: add the Ewald-like features phi to the projection and the scalar update.
        reciprocal_channels: channels C of phi.
        reciprocal_basis: Gaussians in the reciprocal filter.
        reciprocal_k_max: reciprocal cutoff in 1/Å.
        assignment: ``prototypes`` (learned prototypes and gates, K_max slots) or
            ``fourier`` (threshold clustering of spectral signatures, a K per structure;
            :mod:`eqna.nn.fourier_clusters`).
        fourier_threshold, fourier_temperature, fourier_score_temperature, fourier_hard,
        fourier_signature, fourier_channels, fourier_num_k, fourier_k_max,
        fourier_dim: the ``threshold``, ... arguments of
            :class:`eqna.nn.fourier_clusters.FourierClusters`.
        cutoff: the graph's radius, Å (set by the model).
    """

    def __init__(
        self,
        irreps_in: o3.Irreps,
        num_neural_atoms: int = 16,
        pooling: Literal["equivariant", "invariant"] = "equivariant",
        prototype_dim: int = 32,
        num_heads: int = 4,
        learn_gates: bool = True,
        gate_init: float = 0.9,
        prune_epsilon: float = 0.01,
        reciprocal: bool = False,
        reciprocal_channels: int = 8,
        reciprocal_basis: int = 8,
        reciprocal_k_max: float = 1.2,
        assignment: Literal["prototypes", "fourier"] = "prototypes",
        fourier_threshold: float = 0.5,
        fourier_temperature: float = 0.1,
        fourier_score_temperature: float = 1.0,
        fourier_hard: bool = False,
        fourier_signature: Literal["local", "reciprocal"] = "local",
        fourier_channels: int = 8,
        fourier_num_k: int = 8,
        fourier_k_max: float = 4.0,
        fourier_dim: int = 16,
        cutoff: float = 5.0,
    ):
        super().__init__()
        self.irreps_in = o3.Irreps(irreps_in)
        scalar_idx, vec_idx = split_scalars(self.irreps_in)
        if not scalar_idx:
            raise ValueError(f"neural atoms need 0e scalars in the features, got {self.irreps_in}")
        if pooling not in ("equivariant", "invariant"):
            raise ValueError(f"pooling must be 'equivariant' or 'invariant', got {pooling!r}")
        if assignment not in ASSIGNMENTS:
            raise ValueError(f"assignment must be one of {ASSIGNMENTS}, got {assignment!r}")
        if not 0.0 < gate_init < 1.0:
            raise ValueError(f"gate_init must be in (0, 1), got {gate_init}")
        self.pooling = pooling
        self.prune_epsilon = float(prune_epsilon)
        self.register_buffer("scalar_idx", torch.tensor(scalar_idx, dtype=torch.long))
        d = len(scalar_idx)
        irreps_vec = o3.Irreps([(m, ir) for m, ir in self.irreps_in if ir != o3.Irrep("0e")])
        if pooling == "invariant":
            irreps_vec = o3.Irreps("")
            self.irreps_pool = o3.Irreps(f"{d}x0e")
        else:
            self.irreps_pool = o3.Irreps(f"{d}x0e") + irreps_vec
            bad = [f"{m}x{ir}" for m, ir in irreps_vec if m % num_heads]
            if bad:
                raise ValueError(f"num_heads={num_heads} must divide the multiplicity of {bad}")
        # pooled features are [scalars, non-scalars]: gather the flat input in that order
        pool_idx = scalar_idx + (vec_idx if pooling == "equivariant" else [])
        self.register_buffer("pool_idx", torch.tensor(pool_idx, dtype=torch.long))
        self.reciprocal = None
        if reciprocal:
            self.reciprocal = ReciprocalFeatures(
                d, reciprocal_channels, reciprocal_basis, reciprocal_k_max
            )
        x_dim = d + (reciprocal_channels if reciprocal else 0)
        self.assignment = assignment
        self.fourier = None
        self.last_counts = None  # K per structure of the last forward pass (fourier)
        if assignment == "fourier":
            self.fourier = FourierClusters(
                d, cutoff, fourier_threshold, fourier_temperature, fourier_score_temperature,
                fourier_hard, fourier_signature, fourier_channels,
                fourier_num_k, fourier_k_max, fourier_dim,
            )  # fmt: skip
            self.to_prototype_space = self.prototypes = self.gate_logits = None
        else:
            self.to_prototype_space = nn.Linear(x_dim, prototype_dim, bias=False)
            self.prototypes = nn.Parameter(torch.randn(num_neural_atoms, prototype_dim))
            theta = torch.full((num_neural_atoms,), math.log(gate_init / (1.0 - gate_init)))
            self.gate_logits = nn.Parameter(theta) if learn_gates else None
        self.attention = GatedAttention(d, irreps_vec, num_heads)
        self.retrieve = o3.Linear(self.irreps_pool, self.irreps_in)
        self.reciprocal_out = nn.Linear(reciprocal_channels, d, bias=False) if reciprocal else None
        self.num_neural_atoms = num_neural_atoms
        # set by freeze_pruning: the kept indices as a buffer, for tracing (export), which
        # cannot follow the data-dependent nonzero of active()
        self.register_buffer("frozen_active", None, persistent=False)

    def gates(self) -> torch.Tensor:  # [K_max]
        if self.gate_logits is None:
            return self.retrieve.weight.new_ones(self.num_neural_atoms)
        return torch.sigmoid(self.gate_logits)

    def active(self) -> torch.Tensor:
        """Indices of the neural atoms used: all while training, those with g >= epsilon in eval."""
        if self.frozen_active is not None:
            return self.frozen_active
        if self.training or self.prune_epsilon <= 0:
            return torch.arange(self.num_neural_atoms, device=self.retrieve.weight.device)
        return torch.nonzero(self.gates().detach() >= self.prune_epsilon).squeeze(-1)

    def k_eff(self) -> int:
        """Number of neural atoms whose gate is at least ``prune_epsilon``."""
        return int((self.gates().detach() >= self.prune_epsilon).sum())

    def penalty(self) -> torch.Tensor:
        """L1 norm of the gates (they are positive): the sparsity term of the loss."""
        if self.gate_logits is None:  # frozen gates, or Fourier clusters: nothing to penalise
            return self.retrieve.weight.new_zeros(())
        return self.gates().sum()

    def forward(self, h: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """h [n, irreps_in] -> h + update [n, irreps_in]."""
        batch, num_atoms = data[keys.BATCH], data[keys.NUM_ATOMS]
        h_s = h[:, self.scalar_idx]  # [n, d]
        x, phi = h_s, None
        if self.reciprocal is not None:
            phi = self.reciprocal(h_s, data)  # [n, C]
            x = torch.cat([h_s, phi], dim=-1)
        slot, max_atoms = dense_slots(batch, num_atoms)
        if self.fourier is not None:
            update = self._exchange(h, *self._fourier_slots(h, h_s, data, slot, max_atoms))
        else:
            update = self._prototype_update(h, x, data, slot, max_atoms)
        if phi is not None:
            update = update.index_add(1, self.scalar_idx, self.reciprocal_out(phi))
        return h + update

    def _prototype_update(self, h, x, data, slot, max_atoms) -> torch.Tensor:
        """Steps 1-3 with the learned prototypes and gates, then exchange and retrieval."""
        num_atoms = data[keys.NUM_ATOMS]
        num_graphs = num_atoms.shape[0]
        scale = math.sqrt(self.prototypes.shape[1])
        logits = self.to_prototype_space(x) @ self.prototypes.T / scale  # [n, K_max]
        keep = self.active()
        # softmax over all K_max prototypes, then only the active columns are used
        assign = torch.exp(logits[:, keep] - torch.logsumexp(logits, dim=-1, keepdim=True))
        gates = self.gates()[keep]
        assign = assign * gates  # A~ [n, K]
        if keep.shape[0] == 0:
            return h.new_zeros(h.shape)
        assign_dense = to_dense(assign, slot, num_graphs, max_atoms)  # [g, n_max, K]
        feats = to_dense(h[:, self.pool_idx], slot, num_graphs, max_atoms)
        weight = self.num_neural_atoms / num_atoms.to(h.dtype)  # [g]
        pooled = weight[:, None, None] * (assign_dense.transpose(1, 2) @ feats)  # [g, K, c]
        return self._exchange(h, pooled, torch.log(gates), assign_dense, slot)

    def _fourier_slots(self, h, h_s, data, slot, max_atoms):
        """Pooled features, log leaderships and retrieval weights of the Fourier clusters."""
        num_graphs = data[keys.NUM_ATOMS].shape[0]

        def dense(t):
            return to_dense(t, slot, num_graphs, max_atoms)

        clusters = self.fourier(h_s, data, dense)
        self.last_counts = clusters["counts"].detach()
        similarity = clusters["similarity"]  # [g, n_max, n_max], symmetric
        feats = dense(h[:, self.pool_idx])
        size = similarity.sum(-1, keepdim=True).clamp_min(1e-12)  # 0 only on padding
        pooled = (similarity @ feats) / size  # [g, S, c]: the mean of each leader's cluster
        log_leaders = torch.log(clusters["leaders"].clamp_min(1e-30))  # [g, S]
        return pooled, log_leaders, clusters["retrieval"], slot

    def _exchange(self, h, pooled, log_gates, retrieval, slot) -> torch.Tensor:
        """Steps 4-5: attention among the slots, then retrieval to the atoms."""
        d = self.scalar_idx.shape[0]
        y_vec = pooled[..., d:] if self.pooling == "equivariant" else None
        y_s, y_vec = self.attention(pooled[..., :d], y_vec, log_gates)
        y = y_s if y_vec is None else torch.cat([y_s, y_vec], dim=-1)  # [g, K, irreps_pool]
        retrieved = (retrieval @ y).flatten(0, 1)[slot]  # [n, irreps_pool]
        return self.retrieve(retrieved)


def neural_atom_layers(model: nn.Module) -> list[NeuralAtoms]:
    """Every :class:`NeuralAtoms` layer inside ``model``, in module order."""
    return [m for m in model.modules() if isinstance(m, NeuralAtoms)]


def set_prune_epsilon(model: nn.Module, epsilon: float) -> None:
    """Sets the eval-mode pruning threshold of every neural-atom layer (0 disables pruning)."""
    if epsilon < 0:
        raise ValueError(f"prune epsilon must be >= 0, got {epsilon}")
    for layer in neural_atom_layers(model):
        layer.prune_epsilon = float(epsilon)
        layer.frozen_active = None


def freeze_pruning(model: nn.Module) -> None:
    """Fixes each neural-atom layer's kept neural atoms to those kept now (eval mode), so the
    forward pass has no data-dependent shapes and can be traced (:mod:`eqna.export`). The
    gates are parameters, so for a frozen model the kept set is the same for every input."""
    for layer in neural_atom_layers(model):
        if layer.training:
            raise ValueError("freeze_pruning needs the model in eval mode (call model.eval())")
        layer.frozen_active = None
        layer.frozen_active = layer.active().clone()


def gate_penalty(model: nn.Module) -> torch.Tensor | None:
    """Sum of the gate L1 norms of all neural-atom layers (None if there are none)."""
    layers = neural_atom_layers(model)
    return sum(layer.penalty() for layer in layers) if layers else None


def fourier_layers(model: nn.Module) -> list[NeuralAtoms]:
    """The neural-atom layers of ``model`` with the Fourier assignment, in module order."""
    return [layer for layer in neural_atom_layers(model) if layer.fourier is not None]


def cluster_statistics(counts: list) -> dict[str, float]:
    """``clusters_mean``, ``_std``, ``_min``, ``_max`` of per-structure cluster counts (one
    array per Fourier layer; their sum per structure when there are several)."""
    if not counts:
        return {}
    total = sum(torch.as_tensor(c, dtype=torch.float64) for c in counts)
    return {
        "clusters_mean": float(total.mean()),
        "clusters_std": float(total.std(unbiased=False)),
        "clusters_min": float(total.min()),
        "clusters_max": float(total.max()),
    }


def k_eff_summary(model: nn.Module) -> dict[str, float]:
    """``k_eff`` (summed over layers) and ``k_eff_<i>`` per layer when there are several;
    layers with the Fourier assignment have a K per structure instead (see
    :func:`cluster_statistics`) and are left out."""
    layers = [layer for layer in neural_atom_layers(model) if layer.fourier is None]
    counts = [layer.k_eff() for layer in layers]
    if not counts:
        return {}
    summary = {"k_eff": float(sum(counts))}
    if len(counts) > 1:
        summary.update({f"k_eff_{i}": float(c) for i, c in enumerate(counts)})
    return summary
