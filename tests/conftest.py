from eqna.testing.fixtures import float_dtype, one_thread  # noqa: F401
