"""MD speed and memory of an eqna model through EqnaCalculator and ASE's VelocityVerlet.

Every case runs in a fresh subprocess, so the peak RSS reported (``ru_maxrss``) is that case's
alone; torch allocations are invisible to tracemalloc. Prints a markdown table.

    python tools/bench_md.py                            # all cases, random zoo-architecture model
    python tools/bench_md.py --cases acac-float32 --steps 200
    python tools/bench_md.py --model path/to/model.pt --cases si512-float64
    python tools/bench_md.py --config zoo/equivariant_na.yaml   # another zoo architecture

Speed does not depend on training, so the default model is the architecture of
``zoo/equivariant.yaml`` (or ``--config``) with random weights, elements H, C, N, O, Si.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = {"acac": 50, "si512": 5}  # system -> default number of timed steps per block
DTYPES = ("float32", "float64")
REFERENCE = (
    "reference, MACE 0.3.16 (64x0e+64x1o, l_max 1, r_max 5) on the 2-core dev machine: "
    "acac 22 / 14 steps/s (float32 / float64), Si-512 0.72 / 0.32 steps/s"
)


def make_system(name: str):
    """``acac``: acetylacetone, first embedded frame; ``si512``: rattled 4x4x4 diamond Si."""
    from ase.build import bulk
    from ase.io import read

    if name == "acac":
        path = REPO / "eqna" / "data" / "embedded" / "xtb_molecules.xyz"
        frames = read(path, index=":")
        atoms = next(a for a in frames if a.info.get("config_type") == "acetylacetone")
        atoms.calc = None
        return atoms
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (4, 4, 4)
    atoms.rattle(0.05, seed=0)
    return atoms


def make_model(channels: int | None, config: str):
    """Random model with the architecture of the ``config`` YAML's model section."""
    import torch

    from eqna.models.io import build_model
    from eqna.train.config import load_architecture

    arch = load_architecture(REPO / config)
    family = arch.pop("family")
    if channels:
        arch["num_channels"] = channels
    torch.manual_seed(0)
    fixed = {"elements": [1, 6, 7, 8, 14], "atomic_energies": [0.0] * 5, "avg_num_neighbors": 10.0}
    return build_model(family, {**fixed, **arch})


def run_case(spec: dict) -> dict:
    """Best speed over ``repeats`` blocks of ``steps`` MD steps; runs inside the subprocess.

    The best block is the one least disturbed by other load on the machine (timeit's rule).
    """
    import numpy as np
    import torch
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    from eqna.calculators import EqnaCalculator

    torch.set_num_threads(spec["threads"])
    model = spec["model"] or make_model(spec["channels"], spec["config"])
    calc = EqnaCalculator(model, dtype=spec["dtype"])
    atoms = make_system(spec["system"])
    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dyn.run(spec["warmup"])
    elapsed = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        dyn.run(spec["steps"])
        elapsed.append(time.perf_counter() - start)
    energy_model = calc.model.network
    blocks = getattr(energy_model, "blocks", None)
    return {
        "irreps": str(blocks[0].irreps_out) if blocks is not None else type(energy_model).__name__,
        "neural_atoms": len(getattr(energy_model, "neural_atoms", ())),
        "params": sum(p.numel() for p in calc.model.parameters()),
        "atoms": len(atoms),
        "steps_per_s": spec["steps"] / min(elapsed),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "md_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
        "rebuilds": calc.neighbour_list.num_builds,
    }


def spawn(spec: dict) -> dict:
    """Run one case in a fresh interpreter; its last stdout line is the JSON result."""
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode:
        raise RuntimeError(f"case {spec['system']}-{spec['dtype']} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cases = [f"{s}-{d}" for s in SYSTEMS for d in DTYPES]
    parser.add_argument("--cases", nargs="+", default=cases, choices=cases)
    parser.add_argument("--steps", type=int, help="MD steps per timed block (acac 50, si512 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed MD steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks; the best counts")
    parser.add_argument("--model", help="a model.pt (or zoo name) instead of the random model")
    parser.add_argument("--channels", type=int, help="num_channels of the random model")
    parser.add_argument(
        "--config",
        default="zoo/equivariant.yaml",
        help="YAML whose model section is the random model's architecture",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_case(json.loads(args.worker))))
        return
    print(
        "| model (irreps, params) | system | atoms | dtype | MD steps/s | peak RSS (MB) "
        "| MD ΔRSS (MB) | NL builds |"
    )
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for case in args.cases:
        system, dtype = case.split("-")
        spec = {
            "system": system,
            "dtype": dtype,
            "steps": args.steps or SYSTEMS[system],
            "warmup": args.warmup,
            "repeats": args.repeats,
            "model": args.model,
            "channels": args.channels,
            "config": args.config,
            "threads": args.threads,
        }
        r = spawn(spec)
        print(
            f"| {r['irreps']}{' + neural atoms' if r['neural_atoms'] else ''}, {r['params']:,} "
            f"| {system} | {r['atoms']} | {dtype} "
            f"| {r['steps_per_s']:.3g} | {r['peak_mb']:.0f} | {r['md_mb']:.0f} "
            f"| {r['rebuilds']} |",
            flush=True,
        )
    print(f"\nNote: {REFERENCE}; torch threads = {args.threads}, dt 0.5 fs, 300 K start.")


if __name__ == "__main__":
    main()
