"""Train every (model x atom features x edge features) combination on one crystal data set.

    python tools/compare_crystal_features.py ../shared/data/crystals/perov5_dev.xyz heat_ref \
        --epochs 20 --out runs/perov5_table

Same seeded split (data.split_seed), seed, epoch budget and model width for every run; prints a
markdown table (model | edge features | atom features | test MAE | time/epoch) and writes the
raw results to OUT/results.json. Each finished run leaves OUT/<run>/row.json, so an interrupted
table resumes where it stopped; ``--jobs 2`` trains two combinations at once, each in its own
process with the cores split between them. SkipAtom vectors are learned first from the same
file (labels are not used) with ``eqna-skipatom``.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from eqna.benchmarks.sweep import Job, fresh_run_dir, sweep, write_result
from eqna.data.skipatom import main as skipatom_main
from eqna.train.config import load_config
from eqna.train.run import train

ZOO = Path(__file__).resolve().parents[1] / "zoo"
FAMILIES = ("cgcnn", "flowgnn")
ATOM_FEATURES = ("properties", "onehot", "learned", "skipatom")
EDGE_FEATURES = ("gaussian", "bessel", "atom_gaussian")


def run_one(args, family, atom, edge, skipatom_file) -> dict:
    overrides = [
        f"data.train={args.data}",
        f"data.target_key={args.target}",
        f"model.atom_features={atom}",
        f"model.edge_features={edge}",
        f"training.max_epochs={args.epochs}",
        "training.max_time_minutes=null",
        "training.early_stopping_patience=null",
        f"training.seed={args.seed}",
        "training.progress_bar=false",
        f"data.split_seed={args.split_seed}",
    ]
    if atom == "skipatom":
        overrides.append(f"model.atom_features_file={skipatom_file}")
    if args.max_train_frames:
        overrides.append(f"data.max_train_frames={args.max_train_frames}")
    config = load_config(ZOO / f"{family}.yaml", overrides + list(args.override))
    out = fresh_run_dir(args.out / run_name(family, atom, edge))
    start = time.perf_counter()
    metrics = train(config, out)
    wall = time.perf_counter() - start
    extra = json.loads((out / "test_metrics.json").read_text())
    row = {
        "model": family,
        "edge_features": edge,
        "atom_features": atom,
        "test_mae": metrics["property_mae"],
        "test_rmse": metrics["property_rmse"],
        "split": extra["split"],
        "epochs": extra["epochs"],
        "train_s": extra["train_seconds"],
        "s_per_epoch": extra["train_seconds"] / max(extra["epochs"], 1),
        "wall_s": wall,  # includes reading the data and building the graphs
        "threads": torch.get_num_threads(),
        "budget": budget(args),
    }
    write_result(out / "row.json", row)
    return row


def budget(args) -> dict:
    """The settings every row of one table must share."""
    keys = ("data", "target", "epochs", "seed", "split_seed", "max_train_frames", "override")
    return {key: str(getattr(args, key)) for key in keys}


def run_name(family: str, atom: str, edge: str) -> str:
    return f"{family}-{atom}-{edge}"


def print_table(rows: list[dict], args) -> None:
    print(f"\n{args.data} ({args.target}), {args.epochs} epochs, seed {args.seed}\n")
    print("| model | edge features | atom features | test MAE | time/epoch (s) |")
    print("|---|---|---|---:|---:|")
    for r in rows:
        print(
            f"| {r['model']} | {r['edge_features']} | {r['atom_features']} | "
            f"{r['test_mae']:.4f} | {r['s_per_epoch']:.1f} |"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data")
    parser.add_argument("target", help="atoms.info key of the target")
    parser.add_argument("--out", type=Path, default=Path("runs/crystal_table"))
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument(
        "--max-train-frames", type=int, help="keep the first N frames of DATA, before the split"
    )
    parser.add_argument("--families", nargs="+", default=FAMILIES, choices=FAMILIES)
    parser.add_argument("--atom-features", nargs="+", default=ATOM_FEATURES, choices=ATOM_FEATURES)
    parser.add_argument("--edge-features", nargs="+", default=EDGE_FEATURES, choices=EDGE_FEATURES)
    parser.add_argument("--override", nargs="*", default=[], help="extra dotted.key=value")
    parser.add_argument(
        "--jobs", type=int, default=1, help="combinations trained at once, each in its own process"
    )
    parser.add_argument(
        "--only", nargs=3, metavar=("FAMILY", "ATOM", "EDGE"), help=argparse.SUPPRESS
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.out.mkdir(parents=True, exist_ok=True)
    skipatom_file = args.out / f"skipatom-{Path(args.data).name}.json"  # learned from DATA
    if args.only:
        run_one(args, *args.only, skipatom_file)
        return 0
    if "skipatom" in args.atom_features and not skipatom_file.is_file():
        if skipatom_main([args.data, "-o", str(skipatom_file)]) != 0:
            return 2
    combos = [
        (f, a, e) for f in args.families for e in args.edge_features for a in args.atom_features
    ]
    argv = [*raw, "--out", str(args.out)] if "--out" not in raw else raw
    todo = [
        Job(run_name(*c), (__file__, *argv, "--only", *c), args.out / run_name(*c) / "row.json", c)
        for c in combos
    ]
    rows = sweep(
        todo, budget(args), args.out, args.jobs, lambda *c: run_one(args, *c, skipatom_file)
    )
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    print_table(rows, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
