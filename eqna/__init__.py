"""eqna: equivariant graph neural networks and adaptive neural atoms for atomistic ML."""

__version__ = "0.1.0"
__all__ = ["__version__"]
