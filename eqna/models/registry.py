"""The zoo families: a literal mapping from ``model.family`` to its builder function."""

from eqna.models.equivariant import build_equivariant

MODEL_BUILDERS = {
    "equivariant": build_equivariant,
}
