"""Stability checks of an MD run: temperature limit, shortest pair distance, NVE drift."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from eqna.data.errors import DataError
from eqna.data.neighbours import edge_lengths, neighbour_graph

__all__ = ["StabilityMonitor", "energy_drift", "min_pair_distance", "temperature_limit"]


def temperature_limit(target: float, factor: float, ceiling: float) -> float:
    """The temperature (K) above which a run counts as exploded.

    ``factor x target`` (not used when the target is 0 K), capped at ``ceiling``.
    """
    return min(factor * target if target > 0 else np.inf, ceiling)


def min_pair_distance(atoms: Atoms, cutoff: float) -> tuple[float, int, int]:
    """Shortest distance between two atoms (periodic images included) and the pair.

    Only pairs closer than ``cutoff`` are searched (matscipy neighbour list); returns
    ``(inf, -1, -1)`` when there are none.
    """
    edge_index, shifts = neighbour_graph(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    if edge_index.shape[1] == 0:
        return np.inf, -1, -1
    distances = edge_lengths(atoms.positions, atoms.cell.array, edge_index, shifts)
    k = int(np.argmin(distances))
    return float(distances[k]), int(edge_index[0, k]), int(edge_index[1, k])


def energy_drift(time_ps: np.ndarray, energy_per_atom: np.ndarray) -> tuple[float, float]:
    """NVE drift (slope of a linear fit, meV/atom/ps) and fluctuation (std, meV/atom).

    Args:
        time_ps: [n] simulated time, ps.
        energy_per_atom: [n] total (potential + kinetic) energy per atom, eV.
    """
    if len(time_ps) < 2:
        return float("nan"), float("nan")
    energy_mev = 1000.0 * np.asarray(energy_per_atom)
    return float(np.polyfit(time_ps, energy_mev, 1)[0]), float(energy_mev.std())


@dataclass
class StabilityMonitor:
    """Records every step and says when the structure has turned unphysical.

    Args:
        min_distance: closest allowed pair distance, Å.
        max_temperature: highest allowed instantaneous temperature, K.
        cutoff: radius searched for the shortest pair distance, Å (at least ``min_distance``).
        check_interval: pair distances are checked every this many steps (the temperature and
            finiteness every step).
        max_force_std: eV/Å; a committee calculator's per-atom force spread above it stops
            the run (None: recorded, never a stop).
    """

    min_distance: float
    max_temperature: float
    cutoff: float
    check_interval: int = 1
    max_force_std: float | None = None
    time_fs: array = field(default_factory=lambda: array("d"))  # 8 bytes a step each
    potential: array = field(default_factory=lambda: array("d"))  # eV
    kinetic: array = field(default_factory=lambda: array("d"))  # eV
    temperature: array = field(default_factory=lambda: array("d"))  # K
    volume: array = field(default_factory=lambda: array("d"))  # Å^3 (periodic cells only)
    max_force: float = 0.0  # eV/Å, largest per-atom |F| seen
    closest: float = np.inf  # Å, shortest pair distance seen
    largest_force_std: float | None = None  # eV/Å, a committee's largest per-atom spread seen
    stopped_by_committee: bool = False  # the run stopped at max_force_std

    def observe(self, atoms: Atoms, step: int, time_fs: float) -> str | None:
        """Record the current frame; returns why it is unphysical, or None."""
        try:
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        except DataError as err:  # the calculator refused the frame (eqna.data.validation)
            return f"step {step}: {err}"
        if not (np.isfinite(energy) and np.isfinite(forces).all()):
            return f"step {step}: non-finite energy or forces"
        temperature = atoms.get_temperature()
        self.time_fs.append(time_fs)
        self.potential.append(energy)
        self.kinetic.append(atoms.get_kinetic_energy())
        self.temperature.append(temperature)
        if atoms.pbc.all():
            self.volume.append(atoms.get_volume())
        if len(atoms):
            self.max_force = max(self.max_force, float(np.linalg.norm(forces, axis=1).max()))
        if step % self.check_interval == 0:
            distance, i, j = min_pair_distance(atoms, max(self.cutoff, self.min_distance))
            self.closest = min(self.closest, distance)
            if distance < self.min_distance:
                return (
                    f"step {step}: atoms {i} and {j} are {distance:.3f} Å apart "
                    f"(< --min-distance {self.min_distance} Å)"
                )
        spread = atoms.calc.results.get("forces_std") if atoms.calc is not None else None
        if spread is not None and len(spread):
            atom = int(np.argmax(spread))
            self.largest_force_std = max(self.largest_force_std or 0.0, float(spread[atom]))
            if self.max_force_std is not None and spread[atom] > self.max_force_std:
                self.stopped_by_committee = True
                return (
                    f"step {step}: the committee disagrees on atom {atom}: force std "
                    f"{spread[atom]:.3f} eV/Å > --max-force-std {self.max_force_std} eV/Å"
                )
        if temperature > self.max_temperature:
            return (
                f"step {step}: temperature {temperature:.0f} K > limit {self.max_temperature:.0f} K"
            )
        return None
