"""Invariant crystal-graph models: CGCNN-like and FlowGNN-like, as property or energy models.

atom features (``atom_features``) -> convolutions on the radius graph (optionally only the
``max_num_neighbors`` nearest, as CGCNN) with edge features (``edge_features``) -> a property
head (``output: property``, one vector per structure, mean or sum pooling) or per-atom energies
(``output: energy``: forces and stress then come from the shared autograd wrapper).
"""

import functools

import torch
from torch import nn

from eqna.data import keys
from eqna.data.neighbours import nearest_neighbour_mask
from eqna.models.constraints import PositiveFloat, PositiveInt
from eqna.nn.atom_features import AtomFeatures
from eqna.nn.atom_features import atom_feature_table as atom_feature_table_of
from eqna.nn.crystal import AffineCouplingConv, CGConv
from eqna.nn.edge_features import EdgeFeatures
from eqna.nn.geometry import edge_vectors, scatter_sum
from eqna.nn.readout import STRUCTURE_OUTPUTS, AtomicEnergyShift, structure_head, structure_key

OUTPUTS = (*STRUCTURE_OUTPUTS, "energy")
CONVOLUTIONS = ("cgcnn", "flowgnn")


class CrystalGraphNetwork(nn.Module):
    """Graph dict -> ``property`` [g, t], class ``logits`` [g, C], or ``atomic_energies`` [n]
    and ``energy`` [g].

    The keyword arguments are the ``model`` section of a config, one to one; ``convolution``
    is set by the family (:data:`CRYSTAL_FAMILIES`).

    Energies are E_i = E0[z_i] + scale * (e_i - e_iso[z_i]) + b[z_i] tanh(c_i), where e_iso is the
    network's output for the element alone (no neighbours): the interaction energy vanishes
    exactly, and smoothly, as an atom's neighbours leave the cutoff. Invertible (coupling)
    convolutions also report ``flow_logdet`` [g].

    Args:
        convolution: ``cgcnn`` (CGConv) or ``flowgnn`` (affine coupling), set by the family.
        elements: atomic numbers, in type order (from the data).
        output: ``property`` (one vector per structure), ``classification`` (one logit per
            class, softmax), ``multilabel`` (one logit per label, sigmoids) or ``energy``
            (needs ``max_num_neighbors: null`` and ``normalization`` 'layer' or 'none').
        pooling: ``mean`` (intensive target) or ``sum`` (extensive), property output only.
        target_mean: target mean (per atom for ``sum``), from the data.
        target_std: target std (per atom for ``sum``), from the data.
        classes: classifiers: the class (label) names, from the data.
        atomic_energies: E0 per element, eV, from the data (energy output).
        scale: energy scale, from the data (energy output).
        shift: energy shift, from the data (energy output).
        r_max: cutoff radius, Å.
        max_num_neighbors: keep each atom's k nearest neighbours within r_max (None: all).
        atom_features: ``properties``, ``onehot``, ``learned`` or ``skipatom``
            (see :mod:`eqna.nn.atom_features`).
        atom_features_file: the SkipAtom JSON (``atom_features: skipatom``).
        atom_features_trainable: fine-tune the initial table (``learned`` always trains).
        atom_feature_table: the table itself, filled in at training time so a saved model
            does not need the file.
        edge_features: ``gaussian``, ``bessel`` or ``atom_gaussian``.
        num_edge_basis: edge basis functions.
        edge_embedding_dim: embed the edge basis to this width (None: no embedding).
        polynomial_p: exponent of the polynomial cutoff envelope.
        num_channels: atom feature width (even for flowgnn).
        num_layers: convolutions.
        head_hidden: hidden width of the readout.
        coupling_hidden: width of the coupling scale/shift network (flowgnn only).
        normalization: ``batch`` (CGCNN), ``layer`` or ``none``.
    """

    def __init__(
        self,
        *,
        convolution: str,
        elements: list[int],
        output: str = "property",
        pooling: str = "mean",
        target_mean: list[float] | None = None,
        target_std: list[float] | None = None,
        classes: list[str] | None = None,
        atomic_energies: list[float] | None = None,
        scale: float = 1.0,
        shift: float = 0.0,
        r_max: PositiveFloat = 8.0,
        max_num_neighbors: int | None = 12,
        atom_features: str = "properties",
        atom_features_file: str | None = None,
        atom_features_trainable: bool = False,
        atom_feature_table: list[list[float]] | None = None,
        edge_features: str = "gaussian",
        num_edge_basis: PositiveInt = 41,
        edge_embedding_dim: int | None = None,
        polynomial_p: PositiveInt = 6,
        num_channels: PositiveInt = 64,
        num_layers: PositiveInt = 3,
        head_hidden: PositiveInt = 128,
        coupling_hidden: PositiveInt = 64,
        normalization: str = "batch",
    ):
        super().__init__()
        _check(output, normalization, max_num_neighbors, atomic_energies)
        if convolution not in CONVOLUTIONS:
            raise ValueError(f"convolution {convolution!r} is not one of {CONVOLUTIONS}")
        elements = list(elements)
        self.register_buffer("elements", torch.tensor(elements, dtype=torch.long))
        self.r_max = float(r_max)
        self.max_num_neighbors = max_num_neighbors
        self.output = output
        self.classes = list(classes) if classes else None
        if atom_feature_table is None:
            table = atom_feature_table_of(atom_features, elements, atom_features_file)
        else:
            table = torch.tensor(atom_feature_table, dtype=torch.float64)
        self.atom_features = AtomFeatures(
            atom_features, len(elements), num_channels, table, atom_features_trainable
        )
        self.edge_features = EdgeFeatures(
            edge_features, r_max, num_edge_basis, len(elements), edge_embedding_dim, polynomial_p
        )
        edge_dim = self.edge_features.out_dim
        if convolution == "cgcnn":
            layers = [CGConv(num_channels, edge_dim, normalization) for _ in range(num_layers)]
        else:
            layers = [
                AffineCouplingConv(num_channels, edge_dim, coupling_hidden, normalization)
                for _ in range(num_layers)
            ]
        self.convs = nn.ModuleList(layers)
        if output != "energy":
            self.head = structure_head(
                output, num_channels, head_hidden, pooling, target_mean, target_std, classes
            )
            self.energy_shift = None
        else:
            self.head = nn.Sequential(
                nn.Linear(num_channels, head_hidden), nn.Softplus(), nn.Linear(head_hidden, 1)
            )
            self.energy_shift = AtomicEnergyShift(list(atomic_energies), scale, shift)
        self.invertible = convolution == "flowgnn"

    def graph(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Edges kept, edge features [e, b], envelope [e] of a batch."""
        edge_index = data[keys.EDGE_INDEX]
        lengths = edge_vectors(data).norm(dim=-1)  # [e]
        if self.max_num_neighbors is not None:
            keep = nearest_neighbour_mask(edge_index[0], lengths, self.max_num_neighbors)
            edge_index, lengths = edge_index[:, keep], lengths[keep]
        pairs = data[keys.NODE_TYPES][edge_index].T  # [e, 2]
        edge_attr, envelope = self.edge_features(lengths, pairs)
        return {"edge_index": edge_index, "edge_attr": edge_attr, "envelope": envelope}

    def encode(self, h: torch.Tensor, graph: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Message passing: [n, f] -> ([n, f], log|det| per atom [n], zeros unless invertible)."""
        logdet = h.new_zeros(h.shape[0])
        for conv in self.convs:
            out = conv(h, graph["edge_index"], graph["edge_attr"], graph["envelope"])
            if isinstance(out, tuple):
                h, logdet = out[0], logdet + out[1]
            else:
                h = out
        return h, logdet

    def decode(self, h: torch.Tensor, graph: dict) -> torch.Tensor:
        """Inverse of :meth:`encode` for invertible models: recovers its input features."""
        if not self.invertible:
            raise TypeError("only coupling (FlowGNN) convolutions are invertible")
        for conv in reversed(self.convs):
            h = conv.inverse(h, graph["edge_index"], graph["edge_attr"], graph["envelope"])
        return h

    def _isolated_energies(self, like: torch.Tensor) -> torch.Tensor:
        """e_iso [num_elements]: the network's atomic output for each element without neighbours."""
        types = torch.arange(len(self.elements), device=like.device)
        dim = self.edge_features.out_dim
        graph = {
            "edge_index": torch.zeros(2, 0, dtype=torch.long, device=like.device),
            "edge_attr": like.new_zeros(0, dim),
            "envelope": like.new_zeros(0),
        }
        h, _ = self.encode(self.atom_features(types), graph)
        return self.head(h).squeeze(-1)

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        graph = self.graph(data)
        types, batch = data[keys.NODE_TYPES], data[keys.BATCH]
        num_graphs = data[keys.NUM_ATOMS].shape[0]
        h, logdet = self.encode(self.atom_features(types), graph)
        out = {}
        if self.invertible:
            out[keys.FLOW_LOGDET] = scatter_sum(logdet, batch, num_graphs)
        if self.energy_shift is None:
            out[structure_key(self.output)] = self.head(h, batch, num_graphs)
            return out
        e = self.head(h).squeeze(-1) - self._isolated_energies(h)[types]  # [n]
        coordination = scatter_sum(graph["envelope"], graph["edge_index"][0], h.shape[0])
        atomic = self.energy_shift(e, coordination, types)
        out[keys.ATOMIC_ENERGIES] = atomic
        out[keys.ENERGY] = scatter_sum(atomic, batch, num_graphs)
        return out


def _check(output, normalization, max_num_neighbors, atomic_energies):
    if output not in OUTPUTS:
        raise ValueError(f"model.output: unknown {output!r}; choose from {OUTPUTS}")
    if output == "energy":
        if max_num_neighbors is not None:
            raise ValueError(
                "model.max_num_neighbors: must be null for output 'energy' (keeping "
                "the k nearest neighbours makes the energy jump when the set changes)"
            )
        if normalization == "batch":
            raise ValueError(
                "model.normalization: 'batch' makes an energy depend on the other "
                "structures of its batch; use 'layer' or 'none' for output 'energy'"
            )
        if atomic_energies is None:
            raise ValueError("output 'energy' needs atomic_energies (computed from the data)")


CRYSTAL_FAMILIES = {
    # CGCNN-like (Xie & Grossman 2018; defaults are the paper's: 8 Å, 12 neighbours, 41
    # Gaussians, 64 channels, 3 convolutions, 128 hidden, batch norm).
    "cgcnn": functools.partial(CrystalGraphNetwork, convolution="cgcnn"),
    # FlowGNN-like: invertible affine-coupling message passing (eqna.nn.crystal
    # .AffineCouplingConv); the encoder's log|det| is ``flow_logdet``. num_channels must be
    # even (two coupled halves); coupling_hidden is the width of the scale/shift network.
    "flowgnn": functools.partial(
        CrystalGraphNetwork, convolution="flowgnn", num_layers=4, normalization="layer"
    ),
}
"""``model.family`` -> constructor with that family's convolution and defaults."""
