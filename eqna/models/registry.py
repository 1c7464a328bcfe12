"""The zoo families: a literal mapping from ``model.family`` to its builder function."""

from eqna.models.crystal import build_cgcnn, build_flowgnn
from eqna.models.equivariant import build_equivariant
from eqna.nn.neural_atoms import NeuralAtoms

MODEL_BUILDERS = {
    "equivariant": build_equivariant,
    "cgcnn": build_cgcnn,
    "flowgnn": build_flowgnn,
}

NESTED_SECTIONS = {"equivariant": {"neural_atoms": NeuralAtoms}}
"""Per family: model keys whose mapping holds the keyword arguments of a module it builds."""
