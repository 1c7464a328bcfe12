"""Running ASE dynamics: relaxation, initial velocities, integrators, the MD loop, frames."""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.filters import FrechetCellFilter
from ase.io import write
from ase.io.formats import filetype
from ase.io.trajectory import Trajectory
from ase.md.langevin import Langevin
from ase.md.langevinbaoab import LangevinBAOAB
from ase.md.velocitydistribution import Stationary, ZeroRotation
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE
from tqdm import tqdm

try:  # ASE >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

from eqna.md.stability import StabilityMonitor

__all__ = ["FrameWriter", "make_dynamics", "relax", "run_md", "set_velocities"]

ENSEMBLES = ("nve", "langevin", "npt")
OPTIMIZERS = {"fire": FIRE, "bfgs": BFGS}
TRAJ_FORMATS = ("traj", "extxyz")
PRESSURE_TAU_FACTOR = 20.0  # barostat time = 20 x thermostat time (1 / friction), ASE's default


class FrameWriter:
    """Trajectory frames written to ``PATH.part``, renamed to PATH by :meth:`commit`."""

    def __init__(self, path: Path):
        self.path, self.part = path, path.with_name(path.name + ".part")
        self.format = filetype(str(path), read=False, guess=False)
        if self.format == "traj":
            self.handle = Trajectory(str(self.part), "w")
        else:
            self.handle = open(self.part, "w")  # closed by commit() or abort()
        self.frames = 0

    def write(self, atoms: Atoms) -> None:
        if self.format == "traj":
            self.handle.write(atoms)
        else:
            write(self.handle, atoms, format=self.format)
            self.handle.flush()
        self.frames += 1

    def commit(self) -> None:
        self.handle.close()
        os.replace(self.part, self.path)

    def abort(self) -> None:
        self.handle.close()
        self.part.unlink(missing_ok=True)


def relax(atoms: Atoms, fmax: float, optimizer: str, steps: int, pressure_gpa: float) -> dict:
    """Relax positions, and the cell too when it is periodic in all three directions.

    The cell relaxes with :class:`ase.filters.FrechetCellFilter` at ``pressure_gpa``.

    Returns:
        ``cell`` (whether the cell relaxed), ``converged``, ``steps``, ``energy_eV``.
    """
    with_cell = bool(atoms.pbc.all())
    target = (
        FrechetCellFilter(atoms, scalar_pressure=pressure_gpa * units.GPa) if with_cell else atoms
    )
    opt = OPTIMIZERS[optimizer](target, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return {
        "cell": with_cell,
        "optimizer": optimizer,
        "fmax_eV_A": fmax,
        "converged": converged,
        "steps": int(opt.nsteps),
        "energy_eV": float(atoms.get_potential_energy()),
    }


def set_velocities(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann velocities at ``temperature`` K without net momentum (nor net angular
    momentum when no direction is periodic)."""
    atoms.set_momenta(np.zeros((len(atoms), 3)))
    if temperature > 0:
        thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
        Stationary(atoms)
        if not atoms.pbc.any():
            ZeroRotation(atoms)


def make_dynamics(
    atoms: Atoms,
    ensemble: str,
    timestep_fs: float,
    temperature: float,
    friction_per_fs: float,
    pressure_gpa: float,
    rng: np.random.Generator,
):
    """The ASE integrator for ``ensemble`` (see :data:`ENSEMBLES`).

    ``langevin``: :class:`ase.md.langevin.Langevin`; ``npt``: :class:`LangevinBAOAB` with a
    hydrostatic (shape-preserving) Langevin barostat, thermostat time ``1 / friction`` and
    barostat time :data:`PRESSURE_TAU_FACTOR` times that.
    """
    dt = timestep_fs * units.fs
    if ensemble == "nve":
        return VelocityVerlet(atoms, timestep=dt)
    if ensemble == "langevin":
        friction = friction_per_fs / units.fs
        return Langevin(
            atoms, dt, temperature_K=temperature, friction=friction, fixcm=False, rng=rng
        )
    if ensemble == "npt":
        t_tau = units.fs / friction_per_fs
        with warnings.catch_warnings():  # only the note that ASE's barostat-mass heuristic is used
            warnings.filterwarnings(
                "ignore", message="Using heuristic P_mass", category=UserWarning
            )
            return LangevinBAOAB(
                atoms,
                dt,
                temperature_K=temperature,
                externalstress=-pressure_gpa * units.GPa,  # ASE stress sign: pressure < 0
                hydrostatic=True,
                T_tau=t_tau,
                P_tau=PRESSURE_TAU_FACTOR * t_tau,
                rng=rng,
            )
    raise ValueError(f"unknown ensemble {ensemble!r}; known: {', '.join(ENSEMBLES)}")


def run_md(
    atoms: Atoms,
    dyn,
    steps: int,
    monitor: StabilityMonitor,
    writer: FrameWriter | None = None,
    traj_interval: int = 10,
    log_interval: int = 0,
    progress: bool = False,
) -> dict:
    """Run ``steps`` steps of the ASE integrator ``dyn``, stopping at the first unphysical frame.

    Frames go to ``writer`` every ``traj_interval`` steps and at the end; a line with the total
    energy and temperature is printed every ``log_interval`` steps (0: never).

    Returns:
        ``steps_done``, ``wall_s`` (after step 0) and ``reason`` (None when stable).
    """
    bar = tqdm(total=steps, unit="step", disable=not progress, file=sys.stderr)
    n_atoms, reason, start = max(len(atoms), 1), None, time.perf_counter()
    for _ in dyn.irun(steps):
        step = dyn.nsteps
        if step == 0:
            start = time.perf_counter()
        reason = monitor.observe(atoms, step, dyn.get_time() / units.fs)
        last = reason is not None or step == steps
        if writer is not None and (step % traj_interval == 0 or last):
            writer.write(atoms)
        if step:
            bar.update(1)
        if log_interval and (step % log_interval == 0 or last) and reason is None:
            etot = (monitor.potential[-1] + monitor.kinetic[-1]) / n_atoms
            temperature = monitor.temperature[-1]
            bar.set_postfix(T=f"{temperature:.0f} K", E=f"{etot:.4f} eV/atom", refresh=False)
            bar.write(
                f"step {step:>8d}  t {dyn.get_time() / (1000 * units.fs):9.4f} ps  "
                f"E_tot {etot:12.6f} eV/atom  T {temperature:8.1f} K"
            )
        if reason is not None:
            break
    bar.close()
    return {"steps_done": int(dyn.nsteps), "wall_s": time.perf_counter() - start, "reason": reason}
