"""The equivariant network: embedding -> interaction blocks (+ neural atoms) -> readout."""

import torch
from e3nn import o3
from torch import nn

from eqna.data import keys
from eqna.models.constraints import NonNegativeInt, PositiveFloat, PositiveInt
from eqna.nn.exact_tables import refresh_exact_tables
from eqna.nn.geometry import edge_vectors, scatter_sum
from eqna.nn.interaction import Interaction, basis_irreps
from eqna.nn.neural_atoms import NeuralAtoms
from eqna.nn.radial import RadialEmbedding
from eqna.nn.readout import (
    STRUCTURE_OUTPUTS,
    AtomicEnergyShift,
    ScalarReadout,
    structure_head,
    structure_key,
)


class EquivariantNetwork(nn.Module):
    """Equivariant network: embedding -> interaction blocks (2-body like NequIP, or many-body
    like MACE with ``correlation`` > 1) -> readout.

    Graph dict -> per-atom and total energies (``output: energy``; forces and stress come from
    :class:`eqna.models.AtomisticModel`), a per-structure ``property`` (``output:
    property``), or class ``logits`` (``classification``, ``multilabel``). Node features are
    ``basis_irreps(num_channels, l_max)``, e.g. ``64x0e+64x1o``, with both parities of every
    l (``64x0e+64x0o+64x1o+64x1e``) when ``parity_odd_outputs``.
    The keyword arguments are the ``model`` section of a config, one to one.

    Args:
        elements: atomic numbers, in type order (from the data).
        atomic_energies: E0 per element, eV (from the data; energy output).
        avg_num_neighbors, scale, shift: data statistics (neighbour count, energy scale/shift).
        r_max: cutoff radius, Å.
        num_basis: radial Bessel functions.
        polynomial_p: exponent of the polynomial cutoff envelope.
        l_max: highest spherical-harmonic order of the node features.
        l_max_edges: highest spherical-harmonic order of the edge filters and of the atomic
            basis of a many-body block (None: ``l_max``).
        correlation: body order of every block, the highest power of the atomic basis A_i
            (1: 2-body blocks; 3: 4-body features in every layer, as MACE).
        num_channels: channels per irrep.
        num_layers: interaction blocks.
        radial_hidden: hidden widths of the radial MLP.
        readout_hidden: hidden scalars of the readout (invariants of a property head).
        readout_every_layer: energy output: add a linear readout of the scalars of every
            block but the last to the atomic energy.
        neural_atoms: keyword arguments of :class:`eqna.nn.neural_atoms.NeuralAtoms` (None: no
            neural atoms).
        neural_atoms_after: 0-based interaction blocks followed by a neural-atom layer. After
            the last block only its scalars reach the energy readout.
        output: ``energy``, ``property``, ``classification`` (one logit per class, softmax)
            or ``multilabel`` (one logit per label, sigmoids).
        pooling: per-structure outputs: ``mean`` (intensive) or ``sum`` (extensive).
        target_mean, target_std: property output: target statistics (from the data).
        classes: classifiers: the class (label) names (from the data).
        parity_odd_outputs: per-structure outputs read pseudoscalars (0o) besides scalars,
            so mirror images can differ (chirality; e3nn's tetris example). The features
            then carry both parities, and the head adds ``readout_hidden`` pseudoscalars made
            from products of the last block's features (0e x 0o, 1o x 1e, ...: two blocks
            already make axial vectors, a third would be needed before a 0o feature
            appears). Outputs stay rotation invariant; reflection invariant only without
            this. Not for energies (a potential is reflection invariant).
    """

    max_num_neighbors = None  # every neighbour within r_max

    def __init__(
        self,
        *,
        elements: list[int],
        atomic_energies: list[float] | None = None,
        avg_num_neighbors: float = 1.0,
        scale: float = 1.0,
        shift: float = 0.0,
        r_max: PositiveFloat = 5.0,
        num_basis: PositiveInt = 8,
        polynomial_p: PositiveInt = 6,
        l_max: NonNegativeInt = 1,
        l_max_edges: NonNegativeInt | None = None,
        correlation: PositiveInt = 1,
        num_channels: PositiveInt = 64,
        num_layers: PositiveInt = 2,
        radial_hidden: list[int] = (64,),
        readout_hidden: PositiveInt = 16,
        readout_every_layer: bool = False,
        neural_atoms: dict | None = None,
        neural_atoms_after: list[int] = (0,),
        output: str = "energy",
        pooling: str = "mean",
        target_mean: list[float] | None = None,
        target_std: list[float] | None = None,
        classes: list[str] | None = None,
        parity_odd_outputs: bool = False,
    ):
        super().__init__()
        if output not in ("energy", *STRUCTURE_OUTPUTS):
            choices = ", ".join(("energy", *STRUCTURE_OUTPUTS))
            raise ValueError(f"model.output: unknown {output!r}; choose from {choices}")
        if output == "energy" and parity_odd_outputs:
            raise ValueError(
                "model.parity_odd_outputs: an energy must not change sign under reflection; "
                "pseudoscalar outputs are for property and classification outputs"
            )
        if output == "energy" and atomic_energies is None:
            raise ValueError("output 'energy' needs atomic_energies (computed from the data)")
        self.output = output
        self.classes = list(classes) if classes else None
        self.r_max = float(r_max)
        self.register_buffer("elements", torch.tensor(list(elements), dtype=torch.long))
        self.irreps_sh = o3.Irreps.spherical_harmonics(
            l_max if l_max_edges is None else l_max_edges
        )
        self.radial_embedding = RadialEmbedding(r_max, num_basis, polynomial_p)
        num_elements = len(elements)
        self.embedding = nn.Linear(num_elements, num_channels, bias=False)
        nn.init.normal_(self.embedding.weight)  # unit-variance features from a one-hot input
        parities = 2 if parity_odd_outputs else 1
        irreps_hidden = basis_irreps(num_channels, l_max, parities)
        irreps = o3.Irreps(f"{num_channels}x0e")
        self.blocks = nn.ModuleList()
        for layer in range(num_layers):
            block = Interaction(
                irreps,
                irreps_hidden,
                self.irreps_sh,
                num_elements,
                num_basis,
                list(radial_hidden),
                avg_num_neighbors,
                self_connection=layer > 0,
                correlation=correlation,
                parities=parities,
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
            if output == "energy" and neural_atoms.get("fourier_hard"):
                raise ValueError(
                    "model.neural_atoms.fourier_hard: a hard cluster assignment makes the "
                    "energy jump when a cluster changes; potentials use the soft one"
                )
            for i in sorted(set(neural_atoms_after)):
                self.neural_atoms[str(i)] = NeuralAtoms(
                    irreps_hidden, **neural_atoms, cutoff=self.r_max
                )
        self.pseudoscalars = None
        self.layer_readouts = nn.ModuleList()
        if output == "energy" and readout_every_layer:
            self.layer_readouts.extend(
                o3.Linear(block.irreps_out, o3.Irreps("0e")) for block in self.blocks[:-1]
            )
        if output == "energy":
            self.readout = ScalarReadout(irreps, readout_hidden)
            self.energy_shift = AtomicEnergyShift(list(atomic_energies), scale, shift)
        else:
            self.invariants = o3.Linear(irreps, o3.Irreps(f"{readout_hidden}x0e"))
            if parity_odd_outputs:  # products of polar and axial features, e.g. 1o . 1e
                self.pseudoscalars = o3.FullyConnectedTensorProduct(
                    irreps, irreps, o3.Irreps(f"{readout_hidden}x0o")
                )
            width = readout_hidden * parities
            self.head = structure_head(
                output, width, readout_hidden, pooling, target_mean, target_std, classes
            )

        self.register_load_state_dict_post_hook(_refresh_after_load)

    def _apply(self, fn, recurse=True):
        """Casts (``.double()``, ``.to(dtype)``) keep the Clebsch-Gordan tables exact."""
        result = super()._apply(fn, recurse)
        refresh_exact_tables(self)
        return result

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
        layer_energies = []  # [n] per block but the last (readout_every_layer)
        for i, block in enumerate(self.blocks):
            update = block(h, node_attrs, data[keys.EDGE_INDEX], edge_sh, edge_embedding)
            h = update + h if update.shape == h.shape else update
            if str(i) in self.neural_atoms:
                h = self.neural_atoms[str(i)](h, data)
            if i < len(self.layer_readouts):
                layer_energies.append(self.layer_readouts[i](h).squeeze(-1))
        num_graphs = data[keys.NUM_ATOMS].shape[0]
        if self.output != "energy":
            invariants = self.invariants(h)
            if self.pseudoscalars is not None:
                invariants = torch.cat([invariants, self.pseudoscalars(h, h)], dim=-1)
            out = self.head(invariants, data[keys.BATCH], num_graphs)
            return {structure_key(self.output): out}
        coordination = scatter_sum(envelope, data[keys.EDGE_INDEX][0], h.shape[0])
        e = self.readout(h)
        for layer_energy in layer_energies:
            e = e + layer_energy
        atomic_energies = self.energy_shift(e, coordination, types)  # [n]
        energy = scatter_sum(atomic_energies, data[keys.BATCH], num_graphs)
        return {keys.ATOMIC_ENERGIES: atomic_energies, keys.ENERGY: energy}


def _refresh_after_load(module: torch.nn.Module, _incompatible_keys) -> None:
    """A loaded state dict holds rounded tables; a named function, so the model pickles
    (``ddp_spawn`` and other process launches send it whole)."""
    refresh_exact_tables(module)
