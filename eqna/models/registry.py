"""The zoo families: a literal mapping from ``model.family`` to the network constructor.

Each constructor's keyword arguments are the ``model`` section of a config, one to one;
:data:`NESTED_SECTIONS` names the arguments that are themselves keyword arguments of a module.
"""

from eqna.models.crystal import CRYSTAL_FAMILIES
from eqna.models.equivariant import EquivariantNetwork
from eqna.nn.neural_atoms import NeuralAtoms

MODEL_BUILDERS = {"equivariant": EquivariantNetwork, **CRYSTAL_FAMILIES}

NESTED_SECTIONS = {"equivariant": {"neural_atoms": NeuralAtoms}}
"""family -> {argument: the module whose keyword arguments it holds}."""
