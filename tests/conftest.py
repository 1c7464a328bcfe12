from eqna.testing.fixtures import float_dtype  # noqa: F401
