"""Calculators that run eqna models inside other codes (ASE)."""

from eqna.calculators.ase import EqnaCalculator, VerletNeighbourList, resolve_model_path

__all__ = ["EqnaCalculator", "VerletNeighbourList", "resolve_model_path"]
