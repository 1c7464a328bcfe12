"""Cost of a committee in one EqnaCalculator against its members called one by one, on the
structures of ``tools/bench_md.py`` (random ``zoo/equivariant.yaml`` models, one per seed),
along a short MD trajectory so the neighbour lists are reused as in a run. Prints a table.

    python tools/bench_committee.py                  # acac and Si-512, 4 members, float32
    python tools/bench_committee.py --members 2 --dtype float64
"""

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

from bench_md import SYSTEMS, make_model, make_system  # noqa: E402


def trajectory(atoms, steps: int):
    """``steps`` copies of ``atoms`` moved along a random walk of 0.01 Å per step."""
    import numpy as np

    rng, frames = np.random.default_rng(0), []
    for _ in range(steps):
        atoms = atoms.copy()
        atoms.positions += rng.normal(scale=0.01, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def seconds_per_frame(calculators, frames) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for atoms in frames:
            for calc in calculators:
                calc.get_forces(atoms)
        best = min(best, (time.perf_counter() - start) / len(frames))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    args = parser.parse_args()
    import torch

    from eqna.calculators import EqnaCalculator

    torch.set_num_threads(1)
    models = []
    for seed in range(args.members):
        torch.manual_seed(seed)
        models.append(make_model(None, "zoo/equivariant.yaml"))
    print(f"| system | atoms | one model ms | committee of {args.members} ms | "
          f"{args.members} calculators ms | committee / separate |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for system in args.systems:
        atoms = make_system(system)
        frames = trajectory(atoms, SYSTEMS[system])
        one = seconds_per_frame([EqnaCalculator(models[0], dtype=args.dtype)], frames)
        committee = seconds_per_frame([EqnaCalculator(models, dtype=args.dtype)], frames)
        separate = seconds_per_frame([EqnaCalculator(m, dtype=args.dtype) for m in models], frames)
        print(f"| {system} | {len(atoms)} | {1e3 * one:.1f} | {1e3 * committee:.1f} | "
              f"{1e3 * separate:.1f} | {committee / separate:.2f} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
