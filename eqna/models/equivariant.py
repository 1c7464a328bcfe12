"""The equivariant interatomic potential: embedding -> interaction blocks -> energy readout."""

import torch
from e3nn import o3
from torch import nn

from eqna.data import keys
from eqna.nn.geometry import edge_vectors, scatter_sum
from eqna.nn.interaction import Interaction
from eqna.nn.neural_atoms import NeuralAtoms
from eqna.nn.radial import RadialEmbedding
from eqna.nn.readout import AtomicEnergyShift, ScalarReadout


def hidden_irreps(num_channels: int, l_max: int) -> o3.Irreps:
    """num_channels copies of each l <= l_max with the parity of spherical harmonics."""
    return o3.Irreps([(num_channels, (ell, (-1) ** ell)) for ell in range(l_max + 1)])


class EquivariantEnergyModel(nn.Module):
    """Graph dict -> per-atom and total energies. Forces and stress come from the physics wrapper.

    Node features are ``hidden_irreps(num_channels, l_max)``, e.g. ``64x0e+64x1o``.
    """

    def __init__(
        self,
        elements: list[int],
        atomic_energies: list[float],
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
        self.readout = ScalarReadout(irreps, readout_hidden)
        self.energy_shift = AtomicEnergyShift(atomic_energies, scale, shift)

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
        coordination = scatter_sum(envelope, data[keys.EDGE_INDEX][0], h.shape[0])
        atomic_energies = self.energy_shift(self.readout(h), coordination, types)  # [n]
        num_graphs = data[keys.NUM_ATOMS].shape[0]
        energy = scatter_sum(atomic_energies, data[keys.BATCH], num_graphs)
        return {keys.ATOMIC_ENERGIES: atomic_energies, keys.ENERGY: energy}


def build_equivariant(
    *,
    elements: list[int],
    atomic_energies: list[float],
    avg_num_neighbors: float,
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
) -> EquivariantEnergyModel:
    """NequIP-style equivariant potential (see :class:`EquivariantEnergyModel`).

    ``neural_atoms``: keyword arguments of :class:`eqna.nn.neural_atoms.NeuralAtoms` (None: no
    neural atoms); one such layer follows each interaction block listed in ``neural_atoms_after``
    (0-based). After the last block only its scalars reach the energy readout.
    """
    return EquivariantEnergyModel(
        list(elements),
        list(atomic_energies),
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
    )


build_equivariant.nested_sections = {"neural_atoms": NeuralAtoms}
