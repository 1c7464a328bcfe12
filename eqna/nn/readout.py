"""Per-atom energy readout and the per-element reference energies."""

import torch
from e3nn import o3
from torch import nn

from eqna.data import keys
from eqna.data.class_labels import OUTPUTS as CLASSIFIER_OUTPUTS


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


POOLINGS = ("mean", "sum")


class PropertyHead(nn.Module):
    """Invariant atom features [n, f] -> one vector [g, t] per structure, in the target's units.

    ``mean`` (intensive, CGCNN): y = std * MLP(mean_i h_i) + mean; ``sum`` (extensive):
    y = sum_i (std * MLP(h_i) + mean), with mean and std per atom. ``target_mean`` and
    ``target_std`` come from the training labels, so the MLP learns a quantity of order one.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        pooling: str,
        target_mean: list[float],
        target_std: list[float],
    ):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling: unknown {pooling!r}; choose from {POOLINGS}")
        if len(target_mean) != len(target_std):
            raise ValueError("target_mean and target_std differ in length")
        self.pooling = pooling
        num_targets = len(target_mean)
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.Softplus(), nn.Linear(hidden, num_targets)
        )
        self.register_buffer("target_mean", torch.tensor(target_mean, dtype=torch.float64))
        self.register_buffer("target_std", torch.tensor(target_std, dtype=torch.float64))

    def forward(self, h: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        counts = torch.zeros(num_graphs, dtype=h.dtype, device=h.device)
        counts.index_add_(0, batch, torch.ones_like(batch, dtype=h.dtype))
        if self.pooling == "mean":
            pooled = torch.zeros(num_graphs, h.shape[1], dtype=h.dtype, device=h.device)
            pooled.index_add_(0, batch, h)
            pooled = pooled / counts.clamp(min=1).unsqueeze(-1)  # [g, f]
            return self.mlp(pooled) * self.target_std + self.target_mean  # [g, t]
        per_atom = self.mlp(h) * self.target_std + self.target_mean  # [n, t]
        out = torch.zeros(num_graphs, per_atom.shape[1], dtype=h.dtype, device=h.device)
        return out.index_add_(0, batch, per_atom)


STRUCTURE_OUTPUTS = ("property", *CLASSIFIER_OUTPUTS)
"""``model.output`` values predicted per structure through a :class:`PropertyHead`."""


def structure_head(output, in_dim, hidden, pooling, target_mean, target_std, classes):
    """The head of a property model (scaled by the target statistics) or of a classifier
    (one unscaled logit per class or label)."""
    if output in CLASSIFIER_OUTPUTS:
        if not classes or (output == "classification" and len(classes) < 2):
            raise ValueError(
                f"output {output!r} needs the class names (classes, from data.target_key), at "
                f"least two for multi-class; got {classes!r}"
            )
        num = len(classes)
        return PropertyHead(in_dim, hidden, pooling, [0.0] * num, [1.0] * num)
    if target_mean is None or target_std is None:
        raise ValueError("output 'property' needs target_mean/target_std (data.target_key)")
    return PropertyHead(in_dim, hidden, pooling, list(target_mean), list(target_std))


def structure_key(output: str) -> str:
    """The prediction key of a per-structure output: ``logits`` of a classifier, else
    ``property``."""
    return keys.LOGITS if output in CLASSIFIER_OUTPUTS else keys.PROPERTY
