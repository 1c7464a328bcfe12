"""eqna-md MODEL STRUCTURE (or python -m eqna.md): molecular dynamics with a stability report.

Runs NVE (velocity Verlet), Langevin NVT or isotropic NPT (Langevin BAOAB with a Langevin
barostat) with an eqna model through eqna.calculators.EqnaCalculator, optionally after a
relaxation, and stops as soon as the structure turns unphysical: two atoms closer than
--min-distance, a temperature above the limit, or non-finite energies or forces.

Exit codes: 0 stable, 2 bad input (nothing is written), 3 unstable (the run stopped early;
the trajectory up to and including the unphysical frame and the JSON summary are written).
With --committee the forces are the members' mean; --max-force-std stops the run (exit 3)
at the first frame where they disagree on an atom by more than that (the active-learning
hook; --uncertain-frame writes that frame with the mean forces and their std per atom).

Units and rules:
  --friction is in 1/fs (0.01/fs = 10/ps). npt is ASE's LangevinBAOAB, hydrostatic: thermostat
  time 1/friction, barostat time 20/friction, cell shape kept, volume free; --pressure in GPa.
  Temperature limit: min(--max-temperature-factor x --temperature, --max-temperature); with
  --temperature 0 only --max-temperature applies. The shortest pair distance is searched
  within the model's cutoff (matscipy neighbour list, periodic images included).
  NVE drift: slope of a linear fit of the total energy per atom vs time (meV/atom/ps);
  fluctuation: its standard deviation (meV/atom). Initial velocities: Maxwell-Boltzmann at
  --temperature (seeded), without net momentum (nor net rotation for a molecule).
  --relax: FrechetCellFilter on positions and cell at --pressure for a cell periodic in all
  three directions, else positions only.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.io import read, write
from ase.io.formats import UnknownFileTypeError, filetype

from eqna.calculators import EqnaCalculator
from eqna.cli import add_version, user_error
from eqna.data.errors import DataError
from eqna.data.graph import UnknownElementError, type_indices
from eqna.data.validation import check_structure
from eqna.evaluate.predictions import write_atomically
from eqna.md.dynamics import (
    ENSEMBLES,
    OPTIMIZERS,
    TRAJ_FORMATS,
    FrameWriter,
    make_dynamics,
    relax,
    run_md,
    set_velocities,
)
from eqna.md.stability import StabilityMonitor, energy_drift, temperature_limit
from eqna.models.committee import resolve_committee

__all__ = ["InputError", "build_parser", "format_summary", "main", "summarize"]


class InputError(Exception):
    """Bad command-line input: a missing or unreadable file, an unknown element, a bad value."""


def summarize(args, atoms: Atoms, monitor: StabilityMonitor, run: dict, relaxed) -> dict:
    """The JSON summary of a run (energies per atom, times in ps, NVE drift for NVE only)."""
    n_atoms, steps_done = max(len(atoms), 1), run["steps_done"]
    time_ps = np.asarray(monitor.time_fs) / 1000.0
    total = (np.asarray(monitor.potential) + np.asarray(monitor.kinetic)) / n_atoms
    drift, fluctuation = energy_drift(time_ps, total) if args.ensemble == "nve" else (None, None)
    volumes = np.asarray(monitor.volume) / n_atoms

    def finite(x):
        return None if x is None or not np.isfinite(x) else float(x)

    return {
        "model": args.model,
        "structure": args.structure,
        "index": args.index,
        "ensemble": args.ensemble,
        "n_atoms": len(atoms),
        "temperature_target_K": args.temperature,
        "timestep_fs": args.timestep,
        "steps_requested": args.steps,
        "steps_done": steps_done,
        "simulated_ps": steps_done * args.timestep / 1000.0,
        "wall_s": run["wall_s"],
        "steps_per_s": steps_done / run["wall_s"] if steps_done and run["wall_s"] > 0 else None,
        "mean_temperature_K": finite(np.mean(monitor.temperature)) if monitor.temperature else None,
        "max_force_eV_A": monitor.max_force,
        "max_force_std_eV_A": monitor.largest_force_std,  # None without a committee
        "committee": [args.model, *args.committee]
        if args.committee
        else resolve_committee(args.model),
        "min_pair_distance_A": finite(monitor.closest),
        "energy_drift_meV_per_atom_per_ps": finite(drift),
        "energy_fluctuation_meV_per_atom": finite(fluctuation),
        "mean_volume_A3_per_atom": finite(volumes.mean()) if len(volumes) else None,
        "stable": run["reason"] is None,
        "reason": run["reason"],
        "relax": relaxed,
        "thresholds": {
            "min_distance_A": monitor.min_distance,
            "max_temperature_K": finite(monitor.max_temperature),
            "max_force_std_eV_A": args.max_force_std,
        },
    }


def format_summary(summary: dict) -> str:
    """A small markdown table of a :func:`summarize` dict."""

    def num(value, fmt):
        return "–" if value is None else format(value, fmt)

    rows = [
        ("steps done", f"{summary['steps_done']} / {summary['steps_requested']}"),
        ("simulated time (ps)", num(summary["simulated_ps"], ".4g")),
        ("speed (steps/s)", num(summary["steps_per_s"], ".4g")),
        ("mean temperature (K)", num(summary["mean_temperature_K"], ".1f")),
        ("max force (eV/Å)", num(summary["max_force_eV_A"], ".3g")),
        ("min pair distance (Å)", num(summary["min_pair_distance_A"], ".3f")),
    ]
    if summary["ensemble"] == "nve":
        rows.append(
            ("NVE drift (meV/atom/ps)", num(summary["energy_drift_meV_per_atom_per_ps"], ".3g"))
        )
        rows.append(
            ("NVE fluctuation (meV/atom)", num(summary["energy_fluctuation_meV_per_atom"], ".3g"))
        )
    if summary["max_force_std_eV_A"] is not None:
        rows.append(("committee max force std (eV/Å)", num(summary["max_force_std_eV_A"], ".3g")))
    if summary["mean_volume_A3_per_atom"] is not None:
        rows.append(("mean volume (Å³/atom)", num(summary["mean_volume_A3_per_atom"], ".4g")))
    rows.append(("stable", "yes" if summary["stable"] else f"no: {summary['reason']}"))
    title = (
        f"{summary['ensemble'].upper()} MD, {summary['n_atoms']} atoms, "
        f"{summary['temperature_target_K']:g} K, {summary['timestep_fs']:g} fs"
    )
    lines = [title, "", "| quantity | value |", "|---|---:|"]
    return "\n".join(lines + [f"| {name} | {value} |" for name, value in rows])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eqna-md",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(parser)
    add = parser.add_argument
    add("model", help="model.pt, exported .pt2, committee folder, or zoo name (eqna-zoo list)")
    add(
        "--committee",
        nargs="+",
        default=[],
        metavar="MODEL",
        help="more models: MODEL and these are a committee (mean forces, their spread)",
    )
    add(
        "--max-force-std",
        type=float,
        metavar="EV_PER_A",
        help="stop (exit 3) when the committee's per-atom force std exceeds this",
    )
    add(
        "--uncertain-frame",
        metavar="FILE",
        help="with --max-force-std: write the frame that stopped the run here (extxyz)",
    )
    add("structure", help="any file ase.io.read reads (extxyz, cif, traj, ...)")
    add("--index", type=int, default=-1, help="frame of STRUCTURE (default -1: the last)")
    add("--ensemble", choices=ENSEMBLES, default="nve", help="default nve")
    add("--temperature", type=float, default=300.0, help="K, velocities + thermostat (300)")
    add("--steps", type=int, default=1000, help="MD steps (default 1000)")
    add("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    add("--friction", type=float, default=0.01, help="1/fs, langevin and npt (default 0.01)")
    add("--pressure", type=float, default=0.0, help="GPa, for npt and --relax (default 0)")
    add("--seed", type=int, default=0, help="seed of velocities and Langevin noise (default 0)")
    add("--traj", help="write frames to this .traj or .xyz/.extxyz file")
    add("--traj-interval", type=int, default=10, help="steps between frames (default 10)")
    add("--json", help="write the summary to this JSON file")
    add("--log-interval", type=int, default=100, help="steps between log lines (100; 0: none)")
    add("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add("--relax", action="store_true", help="relax first (positions; cell too if periodic)")
    add("--fmax", type=float, default=0.05, help="eV/Å, relaxation target (default 0.05)")
    add("--optimizer", choices=sorted(OPTIMIZERS), default="fire", help="default fire")
    add("--relax-steps", type=int, default=500, help="most relaxation steps (default 500)")
    add("--min-distance", type=float, default=0.5, help="Å: closer pairs are unstable (0.5)")
    add("--max-temperature-factor", type=float, default=10.0, help="unstable above this x T (10)")
    add("--max-temperature", type=float, default=5000.0, help="K: unstable above (default 5000)")
    add("--check-interval", type=int, default=1, help="steps between distance checks (1)")
    add("--device", default="cpu", help="torch device of the model (default cpu)")
    add("--dtype", choices=["float32", "float64"], help="model dtype (default: as saved)")
    add("--threads", type=int, help="torch CPU threads (default: torch's)")
    return parser


def check_args(args) -> None:
    """Raise :class:`InputError` for values no run can use (before anything is read)."""
    rules = [
        ("--steps", args.steps >= 0, ">= 0"),
        ("--timestep", args.timestep > 0, "> 0"),
        ("--temperature", args.temperature >= 0, ">= 0"),
        ("--friction", args.friction > 0, "> 0"),
        ("--traj-interval", args.traj_interval >= 1, ">= 1"),
        ("--log-interval", args.log_interval >= 0, ">= 0"),
        ("--check-interval", args.check_interval >= 1, ">= 1"),
        ("--min-distance", args.min_distance >= 0, ">= 0"),
        ("--max-temperature-factor", args.max_temperature_factor > 1, "> 1"),
        ("--max-temperature", args.max_temperature > args.temperature, "> --temperature"),
        ("--fmax", args.fmax > 0, "> 0"),
        ("--relax-steps", args.relax_steps >= 0, ">= 0"),
        ("--threads", args.threads is None or args.threads >= 1, ">= 1"),
    ]
    for name, ok, rule in rules:
        if not ok:
            raise InputError(
                f"{name} must be {rule}, got {getattr(args, name[2:].replace('-', '_'))}"
            )
    if args.max_force_std is not None and not (args.committee or _is_committee(args.model)):
        raise InputError(
            "--max-force-std needs a committee: a committee folder as MODEL, or more models "
            "with --committee"
        )
    if args.max_force_std is not None and not args.max_force_std > 0:
        raise InputError(f"--max-force-std must be > 0, got {args.max_force_std}")
    if args.uncertain_frame is not None and args.max_force_std is None:
        raise InputError("--uncertain-frame is written only with --max-force-std")
    for name in ("traj", "json", "uncertain_frame"):
        path = getattr(args, name)
        if path is not None and not Path(path).parent.is_dir():
            flag = "--" + name.replace("_", "-")
            raise InputError(f"{flag} {path}: folder {Path(path).parent} does not exist")
    if args.traj is not None:
        try:
            fmt = filetype(args.traj, read=False, guess=False)
        except (KeyError, UnknownFileTypeError):
            fmt = None
        if fmt not in TRAJ_FORMATS:
            raise InputError(f"--traj {args.traj}: use a .traj or .xyz/.extxyz file name")


def _is_committee(model: str) -> bool:
    try:
        return resolve_committee(model) is not None
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from err


def read_structure(path: str, index: int) -> Atoms:
    """Frame ``index`` of ``path``; every read failure is an :class:`InputError` naming both."""
    if not Path(path).is_file():
        raise InputError(f"{path}: structure file not found")
    try:
        atoms = read(path, index=index)
    except (IndexError, StopIteration) as err:
        raise InputError(f"{path}: no frame {index} in the file") from err
    except (OSError, ValueError, KeyError, UnknownFileTypeError) as err:
        raise InputError(
            f"{path}: cannot read frame {index} ({type(err).__name__}: {err})"
        ) from err
    if not isinstance(atoms, Atoms) or len(atoms) == 0:
        raise InputError(f"{path}: frame {index} holds no atoms")
    atoms.calc = None
    return atoms


def load_calculator(model, device: str, dtype: str | None) -> EqnaCalculator:
    """The calculator (``model`` a list: a committee), or an :class:`InputError` naming the
    model or device that failed."""
    try:
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError) as err:  # torch asserts for a build without CUDA
        raise InputError(f"--device {device}: {err}") from err
    try:
        return EqnaCalculator(model, device=device, dtype=dtype)
    except FileNotFoundError as err:
        raise InputError(str(err)) from err
    except (ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InputError(
            f"{model}: cannot load the model ({type(err).__name__}: {first_line})"
        ) from err


def prepare(args) -> tuple[Atoms, EqnaCalculator]:
    """Validated arguments, structure and calculator: every bad input fails here, early."""
    check_args(args)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    atoms = read_structure(args.structure, args.index)
    if args.ensemble == "npt" and not atoms.pbc.all():
        raise InputError(
            f"{args.structure}: npt needs a cell periodic in all three directions, "
            f"this frame has pbc={atoms.pbc.tolist()}"
        )
    models = [args.model, *args.committee] if args.committee else args.model
    calc = load_calculator(models, args.device, args.dtype)
    where = f"{args.structure} frame {args.index}: "
    try:
        type_indices(atoms.numbers, calc.elements, where=where)
        # the checks training data passes and the calculator repeats at every step
        check_structure(atoms, calc.r_max, replace(calc.limits, prefix="EqnaCalculator "), where)
    except (UnknownElementError, DataError) as err:
        raise InputError(str(err)) from err
    atoms.calc = calc
    return atoms, calc


def write_frame(path: str, atoms: Atoms) -> None:
    """The frame with its committee's mean forces and spread, whole or not at all."""
    frame = atoms.copy()
    frame.arrays["eqna_forces"] = atoms.calc.results["forces"].copy()
    frame.arrays["eqna_forces_std"] = atoms.calc.results["forces_std"].copy()
    write_atomically(path, lambda part: write(part, frame, format="extxyz"))


def write_json(path: str, summary: dict) -> None:
    """Write ``summary`` whole or not at all."""
    write_atomically(path, lambda part: part.write_text(json.dumps(summary, indent=2) + "\n"))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        atoms, calc = prepare(args)
    except InputError as err:
        return user_error(err, args.debug)
    relaxed = None
    if args.relax:
        relaxed = relax(atoms, args.fmax, args.optimizer, args.relax_steps, args.pressure)
        what = "positions and cell" if relaxed["cell"] else "positions"
        print(f"relaxed {what}: {relaxed['steps']} steps")
        if not relaxed["converged"]:
            print(f"warning: relaxation not converged to {args.fmax} eV/Å", file=sys.stderr)
    rng = np.random.default_rng(args.seed)
    set_velocities(atoms, args.temperature, rng)
    dyn = make_dynamics(
        atoms, args.ensemble, args.timestep, args.temperature, args.friction, args.pressure, rng
    )
    limit = temperature_limit(args.temperature, args.max_temperature_factor, args.max_temperature)
    monitor = StabilityMonitor(
        args.min_distance, limit, calc.r_max, args.check_interval, args.max_force_std
    )
    writer = FrameWriter(Path(args.traj)) if args.traj else None
    try:
        run = run_md(
            atoms, dyn, args.steps, monitor, writer, args.traj_interval, args.log_interval,
            args.progress,
        )  # fmt: skip
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None:
        writer.commit()
    if args.uncertain_frame and monitor.stopped_by_committee:
        write_frame(args.uncertain_frame, atoms)
    summary = summarize(args, atoms, monitor, run, relaxed)
    print(f"{args.structure} with {args.model}")
    print(format_summary(summary))
    if args.json:
        write_json(args.json, summary)
    return 0 if summary["stable"] else 3
