"""Molecular dynamics with a stability report (``python -m eqna.md``; usage: eqna.md.cli)."""

from eqna.md.cli import InputError, format_summary, main
from eqna.md.dynamics import make_dynamics, relax, run_md
from eqna.md.stability import (
    StabilityMonitor,
    energy_drift,
    min_pair_distance,
    temperature_limit,
)

__all__ = [
    "InputError",
    "StabilityMonitor",
    "energy_drift",
    "format_summary",
    "main",
    "make_dynamics",
    "min_pair_distance",
    "relax",
    "run_md",
    "temperature_limit",
]
