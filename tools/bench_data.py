"""Data at scale: peak memory and speed of in-memory data against a packed store, on QM9.

    python tools/bench_data.py                                  # 10k and all of QM9 (131k)
    python tools/bench_data.py --sizes 10000 130831 1000000     # 1M: QM9 replicated, rattled
    python tools/bench_data.py --sizes 10000 --throughput --json data.json

Needs ``pip install "eqna[store,qm9]"``. For each size N (the first N QM9 molecules; past
131k, QM9 again with every atom rattled by 0.01 Å, seeded) it packs a store (pack time), and
in a fresh subprocess each (so ``ru_maxrss`` is that case's alone) prepares the data of
``configs/qm9_gap.yaml`` from the store and, up to ``--in-memory-max``, from an extxyz file of
the same molecules, then walks 300 batches of the training loader: peak RSS, prepare time and
loader structures/s. ``--throughput`` also trains one epoch of the smallest size from the
store with 0, 1 and 2 DataLoader workers, from the extxyz file, and with DDP on 2 processes
(structures/s of training). Prints markdown tables; writes JSON with ``--json``.
"""

import argparse
import itertools
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "qm9_gap.yaml"
TARGETS = "gap"
WALK_BATCHES = 300  # loader speed over the first 300 batches (9,600 structures)


def molecules(n: int):
    """(atoms, 0, frame) of the first ``n`` QM9 molecules, QM9 repeated (rattled) past its end."""
    import numpy as np

    from eqna.data.qm9 import iter_qm9

    produced, round_ = 0, 0
    while produced < n:
        rng = np.random.default_rng(round_)
        for atoms in iter_qm9():
            if produced == n:
                return
            if round_:
                atoms.positions += rng.normal(scale=0.01, size=atoms.positions.shape)
            yield atoms, 0, produced
            produced += 1
        round_ += 1


def pack_store(n: int, work: Path, reuse: bool) -> dict:
    from eqna.data.pack import pack
    from eqna.data.store import MANIFEST, StoreKeys
    from eqna.data.store_statistics import FOLDER

    store = work / f"store_{n}"
    if reuse and (store / MANIFEST).is_file():  # measured as packed: no cached statistics
        shutil.rmtree(store / FOLDER, ignore_errors=True)
        return {"pack_s": None}
    start = time.perf_counter()
    keys = StoreKeys(target_key=(TARGETS,))  # neighbour lists for the config's r_max
    pack([f"qm9 x{n}"], work / f"store_{n}", keys, cutoff=5.0, frames=molecules(n))
    return {"pack_s": time.perf_counter() - start}


def write_xyz(n: int, work: Path) -> Path:
    import ase.io

    path = work / f"qm9_{n}.xyz"
    if not path.is_file():
        ase.io.write(path, [atoms for atoms, _, _ in molecules(n)], format="extxyz")
    return path


def measure(source: str, workers: int) -> dict:
    """Worker: prepare the data and walk one training epoch of the loader."""
    import torch

    from eqna.data.prepare import make_loader, prepare_data
    from eqna.train.config import load_config

    config = load_config(CONFIG, [f"data.train={source}", f"data.num_workers={workers}"])
    start = time.perf_counter()
    data = prepare_data(config.data, 5.0)
    prepared = time.perf_counter() - start
    loader = make_loader(data.train, 32, torch.float32, True, 0, workers)
    start = time.perf_counter()
    count = 0
    for batch in itertools.islice(loader, WALK_BATCHES):
        count += int(batch["num_atoms"].shape[0])
    walked = time.perf_counter() - start
    return {"prepare_s": prepared, "loader_structures_per_s": count / walked,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # fmt: skip


def _subprocess(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def train_throughput(source: str, work: Path, name: str, overrides: list[str]) -> float:
    out = work / f"train_{name}"
    argv = [sys.executable, "-m", "eqna.train", str(CONFIG), f"data.train={source}",
            "training.max_epochs=1", "training.max_time_minutes=null",
            "training.progress_bar=false", "-o", str(out), "--overwrite", *overrides]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
    metrics = json.loads((out / "test_metrics.json").read_text())
    from eqna.train.config import load_config

    config = load_config(CONFIG, [f"data.train={source}"])
    size = int(source.rsplit("_", 1)[-1].split(".")[0])
    held_out = round(config.data.valid_fraction * size) + round(config.data.test_fraction * size)
    return (size - held_out) / metrics["train_seconds"]  # train_seconds: with validation


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 130831])
    parser.add_argument("--in-memory-max", type=int, default=130831)
    parser.add_argument("--throughput", action="store_true")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench_data")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--reuse-stores", action="store_true",
        help="measure complete stores already in --work instead of packing them again",
    )  # fmt: skip
    parser.add_argument("--measure", nargs=2, metavar=("SOURCE", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], int(args.measure[1]))))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.sizes:
        row = {"structures": n, **pack_store(n, args.work, args.reuse_stores)}
        row["store"] = _subprocess(["--measure", str(args.work / f"store_{n}"), "0"])
        if n <= args.in_memory_max:
            row["in_memory"] = _subprocess(["--measure", str(write_xyz(n, args.work)), "0"])
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(
        "| structures | pack s (per 10k) | store: peak RSS MB | prepare s | loader structures/s "
        "| in memory: peak RSS MB | prepare s | loader structures/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        n, seconds = row["structures"], row["pack_s"]
        packed = "-" if seconds is None else f"{seconds:.0f} ({1e4 * seconds / n:.1f})"
        cells = [f"{n}", packed]
        for case in (row["store"], row.get("in_memory")):
            if case is None:
                cells += ["-", "-", "-"]
                continue
            cells += [f"{case['peak_rss_mb']:.0f}", f"{case['prepare_s']:.1f}",
                      f"{case['loader_structures_per_s']:.0f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    result = {"sizes": rows}
    if args.throughput:
        n = min(args.sizes)
        store, xyz = str(args.work / f"store_{n}"), str(write_xyz(n, args.work))
        cases = {"store, 0 workers": (store, ["data.num_workers=0"]),
                 "store, 1 worker": (store, ["data.num_workers=1"]),
                 "store, 2 workers": (store, ["data.num_workers=2"]),
                 "extxyz in memory": (xyz, ["data.num_workers=0"]),
                 "store, DDP 2 processes": (store, ["training.devices=2", "training.strategy=ddp",
                                                    "training.accelerator=cpu"])}  # fmt: skip
        speeds = {}
        for name, (src, extra) in cases.items():
            label = name.replace(" ", "_").replace(",", "")
            speeds[name] = train_throughput(src, args.work, label, extra)
        print(f"\ntraining one epoch of {n} structures (configs/qm9_gap.yaml)\n")
        print("| case | train structures/s |\n|---|---:|")
        for name, speed in speeds.items():
            print(f"| {name} | {speed:.1f} |")
        result["throughput"] = speeds
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
