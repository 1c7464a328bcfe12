"""Neural-atom pooling variants of a classifier, equal epochs, several seeds: a table.

    python tools/compare_classifiers.py qm9_groups --out runs/qm9_groups --jobs 2
    python tools/compare_classifiers.py CONFIG --epochs 5 --seeds 0 --variants backbone fourier

Variants (only ``model.neural_atoms`` of CONFIG, a zoo name or a YAML file, changes):

    backbone      no neural atoms: the network's own mean pooling
    invariant     learned prototypes and gates, scalar channels pooled
    equivariant   the same, scalars and vectors pooled
    fourier       Fourier-space clusters (a K per structure), equivariant pooling

Every run trains ``--epochs`` epochs without time limit or early stopping and is scored on the
config's test split. ``OUT/table.md`` has accuracy (multilabel: per label, and exact match),
mean ROC-AUC and mean average precision as mean ± std over seeds, K (learned K_eff, or the
mean ± std of K per test structure for Fourier clusters) and the training time; the rows are in
``OUT/results.json``. Finished runs are kept and not run again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from eqna.benchmarks.sweep import Job, fresh_run_dir, mean_std, sweep, write_result
from eqna.models.zoo import architecture_path
from eqna.train.config import load_config
from eqna.train.run import train

NA = "model.neural_atoms"
VARIANTS = {
    "backbone": [f"{NA}=null"],
    "invariant": [f"{NA}={{num_neural_atoms: 8, pooling: invariant}}"],
    "equivariant": [f"{NA}={{num_neural_atoms: 8, pooling: equivariant}}"],
    "fourier": [f"{NA}={{pooling: equivariant, assignment: fourier}}", "training.gate_penalty=0"],
}
SCORES = ("accuracy", "exact_match", "mean_roc_auc", "mean_average_precision")


def config_path(name: str) -> Path:
    path = Path(name)
    return path if path.suffix in (".yaml", ".yml") else architecture_path(name)


def run_one(args, variant: str, seed: int) -> dict:
    overrides = [*VARIANTS[variant], f"training.seed={seed}", f"training.max_epochs={args.epochs}",
                 "training.max_time_minutes=null", "training.early_stopping_patience=null",
                 "training.progress_bar=false"]  # fmt: skip
    config = load_config(config_path(args.config), overrides)
    out = fresh_run_dir(args.out / "runs" / variant / f"seed{seed}")
    metrics = train(config, out)
    fit = json.loads((out / "test_metrics.json").read_text())
    row = {"variant": variant, "seed": seed, "train_s": fit["train_seconds"],
           "budget": budget(args), **{k: metrics[k] for k in SCORES if k in metrics},
           "k": metrics.get("k_eff", metrics.get("clusters_mean")),
           "k_std": metrics.get("clusters_std")}  # fmt: skip
    write_result(out / "row.json", row)
    return row


def budget(args) -> dict:
    return {"config": str(args.config), "epochs": args.epochs}


def table(rows: list[dict], args) -> str:
    scores = [s for s in SCORES if any(s in r for r in rows)]
    lines = [
        f"{args.config}, {args.epochs} epochs per run, seeds {' '.join(map(str, args.seeds))}: "
        "mean ± std over seeds on the test split.",
        "",
        "| variant | " + " | ".join(scores) + " | K | train (s) |",
        "|---|" + "---:|" * (len(scores) + 2),
    ]
    for variant in args.variants:
        group = [r for r in rows if r["variant"] == variant]
        if group:
            cells = [mean_std((r.get(s) for r in group), 3) for s in scores]
            within = [r["k_std"] for r in group if r.get("k_std") is not None]
            k = mean_std((r["k"] for r in group), 3)
            if within:
                k += f" (per structure ± {statistics.mean(within):.2f})"
            train_s = statistics.mean(r["train_s"] for r in group)
            lines.append(f"| {variant} | " + " | ".join(cells) + f" | {k} | {train_s:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a classifier config: zoo name or YAML file")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in a process")
    parser.add_argument("--only", nargs=2, metavar=("VARIANT", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args(raw)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only:
        run_one(args, args.only[0], int(args.only[1]))
        return 0
    combos = [(v, s) for v in args.variants for s in args.seeds]
    todo = [
        Job(
            f"{v}-{s}",
            (__file__, *raw, "--only", v, str(s)),
            args.out / "runs" / v / f"seed{s}" / "row.json",
            (v, s),
        )  # fmt: skip
        for v, s in combos
    ]
    rows = sweep(todo, budget(args), args.out, args.jobs, lambda *c: run_one(args, *c))
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    text = table(rows, args)
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
