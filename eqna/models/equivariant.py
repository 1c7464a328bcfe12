"""The equivariant interatomic potential: embedding -> interaction blocks -> energy readout."""

import torch
from e3nn import o3
from torch import nn

from eqna.data import keys
from eqna.nn.geometry import edge_vectors, scatter_sum
from eqna.nn.interaction import Interaction
from eqna.nn.neural_atoms import NeuralAtoms
from eqna.nn.radial import RadialEmbedding
from eqna.nn.readout import AtomicEnergyShift, PropertyHead, ScalarReadout


def hidden_irreps(num_channels: int, l_max: int) -> o3.Irreps:
    """num_channels copies of each l <= l_max with the parity of spherical harmonics."""
    return o3.Irreps([(num_channels, (ell, (-1) ** ell)) for ell in range(l_max + 1)])


class EquivariantEnergyModel(nn.Module):
    """Graph dict -> per-atom and total energies. Forces and stress come from the physics wrapper.

    Node features are ``hidden_irreps(num_channels, l_max)``, e.g. ``64x0e+64x1o``. With
    ``property_head`` the model instead maps invariants of the final features to a
    per-structure ``property`` (``output: property`` in the builder).
    """

    def __init__(
        self,
        elements: list[int],
        atomic_energies: list[float] | None,
        avg_num_neighbors: float,
        scale: float,
        shift: float,
        r_max: float,
        num_basis: int,
        polynomial_p: int,
        l_max: int,
        num_channels: int,
        num_layers: int,
        radial_hidden: list[int],
        readout_hidden: int,
        neural_atoms: dict | None = None,
        neural_atoms_after: list[int] = (0,),
        property_head: PropertyHead | None = None,
    ):
        super().__init__()
        self.r_max = float(r_max)
        self.register_buffer("elements", torch.tensor(elements, dtype=torch.long))
        self.irreps_sh = o3.Irreps.spherical_harmonics(l_max)
        self.radial_embedding = RadialEmbedding(r_max, num_basis, polynomial_p)
        num_elements = len(elements)
        self.embedding = nn.Linear(num_elements, num_channels, bias=False)
        nn.init.normal_(self.embedding.weight)  # unit-variance features from a one-hot input
        irreps_hidden = hidden_irreps(num_channels, l_max)
        irreps = o3.Irreps(f"{num_channels}x0e")
        self.blocks = nn.ModuleList()
        for layer in range(num_layers):
            block = Interaction(
                irreps,
                irreps_hidden,
                self.irreps_sh,
                num_elements,
                num_basis,
                radial_hidden,
                avg_num_neighbors,
                self_connection=layer > 0,
            )
            self.blocks.append(block)
            irreps = block.irreps_out
        self.neural_atoms = nn.ModuleDict()
        if neural_atoms is not None:
            bad = [i for i in neural_atoms_after if not 0 <= i < num_layers]
            if bad:
                raise ValueError(
                    f"model.neural_atoms_after: block indices {bad} are not in 0..{num_layers - 1}"
                )
            for i in sorted(set(neural_atoms_after)):
                self.neural_atoms[str(i)] = NeuralAtoms(irreps_hidden, **neural_atoms)
        self.output = "energy" if property_head is None else "property"
        if property_head is None:
            self.readout = ScalarReadout(irreps, readout_hidden)
            self.energy_shift = AtomicEnergyShift(atomic_energies, scale, shift)
        else:
            self.invariants = o3.Linear(irreps, o3.Irreps(f"{readout_hidden}x0e"))
            self.head = property_head

    def forward(self, data: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        vectors = edge_vectors(data)  # [e, 3]
        lengths = vectors.norm(dim=-1)  # [e]
        edge_sh = o3.spherical_harmonics(
            self.irreps_sh, vectors, normalize=True, normalization="component"
        )
        edge_embedding, envelope = self.radial_embedding(lengths)  # [e, num_basis], [e]
        types = data[keys.NODE_TYPES]
        node_attrs = nn.functional.one_hot(types, len(self.elements)).to(vectors.dtype)
        h = self.embedding(node_attrs)
        for i, block in enumerate(self.blocks):
            update = block(h, node_attrs, data[keys.EDGE_INDEX], edge_sh, edge_embedding)
            h = update + h if update.shape == h.shape else update
            if str(i) in self.neural_atoms:
                h = self.neural_atoms[str(i)](h, data)
        num_graphs = data[keys.NUM_ATOMS].shape[0]
        if self.output == "property":
            return {keys.PROPERTY: self.head(self.invariants(h), data[keys.BATCH], num_graphs)}
        coordination = scatter_sum(envelope, data[keys.EDGE_INDEX][0], h.shape[0])
        atomic_energies = self.energy_shift(self.readout(h), coordination, types)  # [n]
        energy = scatter_sum(atomic_energies, data[keys.BATCH], num_graphs)
        return {keys.ATOMIC_ENERGIES: atomic_energies, keys.ENERGY: energy}


def build_equivariant(
    *,
    elements: list[int],
    atomic_energies: list[float] | None = None,
    avg_num_neighbors: float = 1.0,
    scale: float = 1.0,
    shift: float = 0.0,
    r_max: float = 5.0,
    num_basis: int = 8,
    polynomial_p: int = 6,
    l_max: int = 1,
    num_channels: int = 64,
    num_layers: int = 2,
    radial_hidden: list[int] = (64,),
    readout_hidden: int = 16,
    neural_atoms: dict | None = None,
    neural_atoms_after: list[int] = (0,),
    output: str = "energy",
    pooling: str = "mean",
    target_mean: list[float] | None = None,
    target_std: list[float] | None = None,
) -> EquivariantEnergyModel:
    """NequIP-style equivariant potential (see :class:`EquivariantEnergyModel`).

    ``neural_atoms``: keyword arguments of :class:`eqna.nn.neural_atoms.NeuralAtoms` (None: no
    neural atoms); one such layer follows each interaction block listed in ``neural_atoms_after``
    (0-based). After the last block only its scalars reach the energy readout.

    ``output: property`` predicts a per-structure target instead of energies: invariants of the
    final features (``readout_hidden`` of them) are pooled (``pooling``: ``mean`` intensive,
    ``sum`` extensive) by :class:`eqna.nn.readout.PropertyHead` with the data's ``target_mean``
    and ``target_std``.
    """
    if output not in ("energy", "property"):
        raise ValueError(f"model.output: unknown {output!r}; choose from energy, property")
    head = None
    if output == "property":
        if target_mean is None or target_std is None:
            raise ValueError("output 'property' needs target_mean/target_std (data.target_key)")
        head = PropertyHead(readout_hidden, readout_hidden, pooling, target_mean, target_std)
    elif atomic_energies is None:
        raise ValueError("output 'energy' needs atomic_energies (computed from the data)")
    return EquivariantEnergyModel(
        list(elements),
        None if atomic_energies is None else list(atomic_energies),
        avg_num_neighbors,
        scale,
        shift,
        r_max,
        num_basis,
        polynomial_p,
        l_max,
        num_channels,
        num_layers,
        list(radial_hidden),
        readout_hidden,
        None if neural_atoms is None else dict(neural_atoms),
        list(neural_atoms_after),
        head,
    )
