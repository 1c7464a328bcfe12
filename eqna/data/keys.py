"""Names of the fields in the graph dictionary that flows between data and model.

The contract between modules is a plain ``dict[str, torch.Tensor]``. Each key below states its
shape; ``n`` is the number of atoms in a batch, ``e`` the number of edges, ``g`` the number of
graphs. The three ``*_FIELDS`` sets tell the collate function how to concatenate a field.
"""

from typing import Final

# inputs
POSITIONS: Final[str] = "positions"  # [n, 3] float, Å
ATOMIC_NUMBERS: Final[str] = "atomic_numbers"  # [n] long
NODE_TYPES: Final[str] = "node_types"  # [n] long, index into the model's element list
CELL: Final[str] = "cell"  # [g, 3, 3] float, rows are lattice vectors; zeros if not periodic
PBC: Final[str] = "pbc"  # [g, 3] bool
EDGE_INDEX: Final[str] = "edge_index"  # [2, e] long; row 0 centre (receiver), row 1 neighbour
EDGE_CELL_SHIFT: Final[str] = "edge_cell_shift"  # [e, 3] float, integer multiples of the cell
BATCH: Final[str] = "batch"  # [n] long, graph index of each atom
NUM_ATOMS: Final[str] = "num_atoms"  # [g] long
PTR: Final[str] = "ptr"  # [g + 1] long, first atom of each graph

# outputs and labels (same keys: a label batch and a prediction dict share names)
ATOMIC_ENERGIES: Final[str] = "atomic_energies"  # [n] eV
ENERGY: Final[str] = "energy"  # [g] eV
FORCES: Final[str] = "forces"  # [n, 3] eV/Å
STRESS: Final[str] = "stress"  # [g, 3, 3] eV/Å^3, ASE sign (positive = tensile)
VIRIAL: Final[str] = "virial"  # [g, 3, 3] eV
ATOMIC_VIRIAL: Final[str] = "atomic_virial"  # [n, 3, 3] eV, each edge's share split half-half
EDGE_DISPLACEMENT: Final[str] = "edge_displacement"  # [e, 3] Å, zeros: dE/dr_ij is read on it
WEIGHT: Final[str] = "weight"  # [g] per-structure loss weight
HAS_ENERGY: Final[str] = "has_energy"  # [g] bool, label present
HAS_FORCES: Final[str] = "has_forces"  # [g] bool
HAS_STRESS: Final[str] = "has_stress"  # [g] bool
# [g, t] per-structure target(s) in their data units; for a classifier the label encoded as
# numbers: the class index ([g, 1], multi-class) or one 0/1 per label ([g, L], multilabel)
PROPERTY: Final[str] = "property"
HAS_PROPERTY: Final[str] = "has_property"  # [g] bool
FLOW_LOGDET: Final[str] = "flow_logdet"  # [g] log|det| of an invertible (flow) encoder
LOGITS: Final[str] = "logits"  # [g, C] classifier scores before the softmax / sigmoids
PROBABILITIES: Final[str] = "probabilities"  # [g, C] softmax (multi-class) or sigmoid per label

INPUT_FIELDS: Final[frozenset] = frozenset(
    {POSITIONS, ATOMIC_NUMBERS, NODE_TYPES, CELL, PBC, EDGE_INDEX, EDGE_CELL_SHIFT, BATCH}
    | {NUM_ATOMS, PTR}
)
"""What every consumer feeds a model (labels aside): the same for training and the calculator."""

NODE_FIELDS: Final[frozenset] = frozenset(
    {POSITIONS, ATOMIC_NUMBERS, NODE_TYPES, BATCH, FORCES, ATOMIC_ENERGIES}
)
EDGE_FIELDS: Final[frozenset] = frozenset({EDGE_INDEX, EDGE_CELL_SHIFT})
GRAPH_FIELDS: Final[frozenset] = frozenset(
    {
        CELL,
        PBC,
        NUM_ATOMS,
        ENERGY,
        STRESS,
        VIRIAL,
        WEIGHT,
        HAS_ENERGY,
        HAS_FORCES,
        HAS_STRESS,
        PROPERTY,
        HAS_PROPERTY,
        FLOW_LOGDET,
        LOGITS,
        PROBABILITIES,
    }
)
