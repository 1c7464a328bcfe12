"""The zoo families: a literal mapping from ``model.family`` to its builder function."""

from eqna.models.crystal import build_cgcnn, build_flowgnn
from eqna.models.equivariant import build_equivariant

MODEL_BUILDERS = {
    "equivariant": build_equivariant,
    "cgcnn": build_cgcnn,
    "flowgnn": build_flowgnn,
}
