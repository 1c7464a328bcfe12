"""Invariant vs equivariant neural-atom pooling, measured with equal budgets over several seeds.

    python tools/compare_pooling.py --out runs/pooling --jobs 2            # full: hours on 2 cores
    python tools/compare_pooling.py --quick --out runs/pooling_quick       # smoke: a few minutes

Variants (one backbone, the equivariant model of ``configs/<dataset>.yaml``; only
``model.neural_atoms`` changes):

    backbone               no neural atoms
    invariant              neural atoms pool and exchange the scalar channels only
    equivariant            scalars and vectors, gated MHA, learned gates (K_eff data-driven)
    fixed_k                equivariant, every gate frozen open (K = K_max)
    <pooling>+recip        the three pooling variants with the reciprocal (Ewald-like) view
    fourier                equivariant pooling on Fourier-space clusters: a K per structure
                           from a threshold on spectral signatures (eqna/nn/fourier_clusters.py)
    fourier+recip          the same with the reciprocal view as the signature

Data sets: ``longrange`` (GFN2-xTB molecule pairs at 2-20 Å, ``tools/make_longrange.py``),
``acac``, ``ethanol`` (trained on the train file, tested on the independent MD file) and ``si``
(mlearn). Every run of a data set has the same epochs, data, split and backbone size; seeds
change the initialisation and batch order. Outputs in OUT: ``table.md`` (mean ± std over seeds of
energy, force and stress MAE with the gain over the backbone, K_eff, parameters, training time,
inference time per structure; equivariant against invariant pooling with Welch's t-test; the
long-range energy error by separation), ``bars.png`` (errors with seed std), ``k_eff.png``,
``separation.png`` and the raw per-run results in ``results.json``. Finished runs leave
``runs/<dataset>/<variant>/seed<k>/row.json`` and are not run again; a folder refuses rows made
with other settings. ``--gate-penalty`` sets λ of the learned gates (not of fixed_k), to see
which K_eff a task selects.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from ase.io import read, write

from eqna.benchmarks.longrange import local_model_floor
from eqna.benchmarks.sweep import Job, fresh_run_dir, mean_std, sweep, write_result
from eqna.calculators.ase import EqnaCalculator
from eqna.data.datasets import resolve_path
from eqna.evaluate.plotting import read_metrics_csv
from eqna.train.config import load_config
from eqna.train.run import train

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("longrange", "acac", "ethanol", "si")
NA = "model.neural_atoms"
POOLING = {
    "invariant": "{pooling: invariant}",
    "equivariant": "{pooling: equivariant}",
    "fixed_k": "{pooling: equivariant, learn_gates: false}",
}
VARIANTS = {"backbone": [f"{NA}=null"]}
for _name, _spec in POOLING.items():
    VARIANTS[_name] = [f"{NA}={_spec}"]
    VARIANTS[f"{_name}+recip"] = [f"{NA}={_spec[:-1]}, reciprocal: true}}"]
VARIANTS["fourier"] = [f"{NA}={{pooling: equivariant, assignment: fourier}}"]
VARIANTS["fourier+recip"] = [
    f"{NA}={{pooling: equivariant, assignment: fourier, fourier_signature: reciprocal}}"
]
for _name in ("fixed_k", "fixed_k+recip", "fourier", "fourier+recip"):
    VARIANTS[_name].append("training.gate_penalty=0.0")  # no gates to penalise
SEPARATION_BINS = (2.0, 5.0, 8.0, 11.0, 14.0, 17.0, 20.0)
TIMED_STRUCTURES = 20


def run_dir(args, dataset: str, variant: str, seed: int) -> Path:
    return args.out / "runs" / dataset / variant / f"seed{seed}"


def test_frames_file(args, dataset: str, refresh: bool = False) -> str:
    """The config's test file, cut to ``--max-test-frames`` when asked: a copy in OUT, remade
    by the parent process (``refresh``) before any run reads it, so it follows the data."""
    config = load_config(REPO / "configs" / f"{dataset}.yaml", [])
    if args.max_test_frames is None:
        return config.data.test
    path = args.out / "data" / f"{dataset}_test_{args.max_test_frames}.xyz"
    if refresh or not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = read(resolve_path(config.data.test), f":{args.max_test_frames}")
        write(path.with_suffix(".tmp.xyz"), frames, format="extxyz")
        os.replace(path.with_suffix(".tmp.xyz"), path)
    return str(path)


def run_one(args, dataset: str, variant: str, seed: int) -> dict:
    """Train one (data set, variant, seed) and measure it; writes and returns its row."""
    overrides = [
        *VARIANTS[variant],
        f"data.test={test_frames_file(args, dataset)}",
        f"training.seed={seed}",
        f"training.max_epochs={args.epochs}",
        "training.max_time_minutes=null",
        "training.early_stopping_patience=null",
        "training.progress_bar=false",
    ]
    if args.max_train_frames:
        overrides.append(f"data.max_train_frames={args.max_train_frames}")
    if (
        args.gate_penalty is not None
        and variant != "backbone"
        and not variant.startswith(("fixed_k", "fourier"))
    ):
        overrides.append(f"training.gate_penalty={args.gate_penalty}")
    config = load_config(REPO / "configs" / f"{dataset}.yaml", overrides)
    out = fresh_run_dir(run_dir(args, dataset, variant, seed))
    metrics = train(config, out)
    fit = json.loads((out / "test_metrics.json").read_text())
    row = {
        "dataset": dataset,
        "variant": variant,
        "seed": seed,
        "energy_mae": metrics["energy_per_atom_mae"],
        "forces_mae": metrics.get("forces_mae"),
        "stress_mae": metrics.get("stress_mae"),
        # Fourier clusters: the mean K per test structure (its std in clusters_std)
        "k_eff": metrics.get("k_eff", metrics.get("clusters_mean")),
        "clusters_std": metrics.get("clusters_std"),
        "k_eff_curve": epoch_curve(out, "k_eff"),
        "gate_l1_curve": epoch_curve(out, "gate_l1"),
        "gate_penalty": config.training.gate_penalty,
        "train_s": fit["train_seconds"],
        "epochs": fit["epochs"],
        "threads": torch.get_num_threads(),  # timings depend on it and on runs alongside
        "jobs": args.jobs,
        "budget": budget(args),
        **calculator_measurements(out / "model.pt", resolve_path(config.data.test)),
    }
    write_result(out / "row.json", row)
    return row


def budget(args) -> dict:
    """The settings every row of one table must share."""
    settings = {
        "epochs": args.epochs,
        "max_train_frames": args.max_train_frames,
        "max_test_frames": args.max_test_frames,
    }
    if args.gate_penalty is not None:  # absent when the configs' own λ is used
        settings["gate_penalty"] = args.gate_penalty
    return settings


def epoch_curve(out: Path, name: str) -> list[float]:
    """Metric ``name`` (k_eff, gate_l1) at the end of every training epoch of the run in ``out``
    (empty without neural atoms)."""
    files = sorted(out.glob("**/metrics.csv"))
    if not files:
        return []
    series = read_metrics_csv(files[-1])
    return series[name][1].tolist() if name in series else []


def calculator_measurements(model: Path, test_file: Path) -> dict:
    """Parameters, inference time per structure (energy + forces through the ASE calculator,
    neighbour list included; median over the first test structures) and, for frames that carry
    a ``separation``, [separation, min_distance, |energy error| per atom] of every test frame."""
    calc = EqnaCalculator(model)
    frames = read(test_file, ":")
    times, errors = [], []
    for i, atoms in enumerate(frames):
        reference = atoms.get_potential_energy()
        atoms.calc = calc
        start = time.perf_counter()
        energy = atoms.get_potential_energy()
        atoms.get_forces()
        if i < TIMED_STRUCTURES:
            times.append(time.perf_counter() - start)
        if "separation" in atoms.info:
            error = abs(energy - reference) / len(atoms)
            errors.append([atoms.info["separation"], atoms.info["min_distance"], error])
        elif i + 1 >= TIMED_STRUCTURES:
            break
    return {
        "params": sum(p.numel() for p in calc.model.parameters()),
        "infer_ms": 1000.0 * statistics.median(times),
        "separation_errors": errors,
    }


def runs_of(rows: list[dict], dataset: str, variant: str) -> list[dict]:
    """The rows (one per seed) of one data set and variant."""
    return [r for r in rows if (r["dataset"], r["variant"]) == (dataset, variant)]


def percent(value: float) -> str:
    return f"{round(value):+d} %"  # an int: never "-0 %"


def gain(group: list[dict], base: list[dict], key: str) -> str:
    """MAE reduction of ``group`` relative to the backbone rows ``base``, means over seeds."""
    ours = [r[key] for r in group if r[key] is not None]
    ref = [r[key] for r in base if r[key] is not None]
    if not ours or not ref:
        return "–"
    return percent(100 * (1 - statistics.mean(ours) / statistics.mean(ref)))


def table(rows: list[dict], args) -> str:
    lines = [
        f"{args.epochs} epochs per run, seeds {' '.join(map(str, args.seeds))}; mean ± std over "
        "seeds. Energy MAE per atom and force MAE on the test file; gain = MAE reduction "
        "relative to the backbone (means over seeds). Inference: energy + forces of one "
        "structure through the ASE calculator (median).",
        "",
        "| data | variant | energy MAE (meV/atom) | gain | force MAE (meV/Å) | gain |"
        " stress MAE (meV/Å³) | K_eff (fourier: K per structure) | params |"
        " train (s) | inference (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dataset in args.datasets:
        base = runs_of(rows, dataset, "backbone")
        for variant in args.variants:
            group = runs_of(rows, dataset, variant)
            if not group:
                continue
            lines.append(
                f"| {dataset} | {variant} | {mean_std(r['energy_mae'] for r in group)} | "
                f"{gain(group, base, 'energy_mae')} | "
                f"{mean_std(r['forces_mae'] for r in group)} | {gain(group, base, 'forces_mae')} | "
                f"{mean_std(r['stress_mae'] for r in group)} | "
                f"{mean_std(r['k_eff'] for r in group)} | {group[0]['params']:,} | "
                f"{statistics.mean(r['train_s'] for r in group):.0f} | "
                f"{statistics.mean(r['infer_ms'] for r in group):.1f} |"
            )
    return "\n".join(lines) + "\n"


CONTRASTS = (
    ("equivariant", "invariant"),
    ("equivariant+recip", "invariant+recip"),
    ("fourier", "equivariant"),
)


def contrast_table(rows: list[dict], args) -> str:
    """Equivariant against invariant pooling (with and without the reciprocal view) and Fourier
    clusters against learned gates: the change of the mean MAE and Welch's t-test p-value over
    seeds (few seeds: read p as a guide)."""
    from scipy.stats import ttest_ind

    lines = [
        "| data | comparison | energy MAE change | p | force MAE change | p |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for dataset in args.datasets:
        for ours, theirs in CONTRASTS:
            cells = []
            for key in ("energy_mae", "forces_mae"):
                a, b = ([r[key] for r in runs_of(rows, dataset, v)] for v in (ours, theirs))
                if len(a) < 2 or len(b) < 2:
                    cells += ["–", "–"]
                    continue
                change = 100 * (statistics.mean(a) / statistics.mean(b) - 1)
                cells += [percent(change), f"{ttest_ind(a, b, equal_var=False).pvalue:.2f}"]
            if cells != ["–"] * 4:
                lines.append(f"| {dataset} | {ours} vs {theirs} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def separation_table(rows: list[dict], variants, cutoff: float) -> str:
    """Energy MAE (meV/atom) of the long-range test frames by separation (mean over seeds) and
    over the frames whose molecules have no atom pair within ``cutoff`` (mean ± std)."""
    bins = list(zip(SEPARATION_BINS[:-1], SEPARATION_BINS[1:]))
    head = " | ".join(f"{lo:g}-{hi:g} Å" for lo, hi in bins)
    some = next(r["separation_errors"] for r in rows if r["separation_errors"])
    num_far = int((np.array(some)[:, 1] > cutoff).sum())
    lines = [
        f"| variant | {head} | beyond {cutoff:g} Å ({num_far} frames) |",
        "|---|" + "---:|" * (len(bins) + 1),
    ]
    for variant in variants:
        curve = separation_curve(rows, variant)
        if curve is None:
            continue
        cells = ["–" if np.isnan(v) else f"{v:.1f}" for v in curve]
        errors = [np.array(r["separation_errors"]) for r in rows if r["variant"] == variant]
        far = [e[e[:, 1] > cutoff, 2] for e in errors if len(e)]
        cells.append(mean_std(1000 * f.mean() for f in far if len(f)))
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def local_bound_line(test_file: Path, cutoff: float) -> str:
    """The lower bound on any strictly local model's error beyond the cutoff on these test
    frames (:func:`eqna.benchmarks.longrange.local_model_floor`)."""
    floor = local_model_floor(read(test_file, ":"), cutoff)
    return (
        f"No strictly local model with a {cutoff:g} Å cutoff can do better than "
        f"{floor['local_floor_mev_per_atom']:.1f} meV/atom on the {floor['far_frames']} test "
        "frames beyond it (eqna/data/longrange.py).\n"
    )


def separation_curve(rows, variant) -> np.ndarray | None:
    per_seed = []
    for r in rows:
        if r["variant"] != variant or not r["separation_errors"]:
            continue
        sep, _, err = np.array(r["separation_errors"]).T
        which = np.digitize(sep, SEPARATION_BINS[1:-1])
        per_seed.append(
            [1000 * err[which == b].mean() if (which == b).any() else np.nan for b in range(6)]
        )
    if not per_seed:
        return None
    per_seed = np.array(per_seed)
    seen = ~np.isnan(per_seed)
    return np.where(seen.any(0), np.nansum(per_seed, 0) / np.maximum(seen.sum(0), 1), np.nan)


def plots(rows: list[dict], args) -> None:
    from eqna.evaluate.plotting import figure_grid, figure_row, save_figure

    quantities = [("energy_mae", "energy MAE (meV/atom)"), ("forces_mae", "force MAE (meV/Å)")]
    if any(r["stress_mae"] is not None for r in rows):
        quantities.append(("stress_mae", "stress MAE (meV/Å³)"))
    fig, grid = figure_grid(len(quantities), len(args.datasets))
    for (key, label), axes in zip(quantities, grid):
        for ax, dataset in zip(axes, args.datasets):
            names, means, stds = [], [], []
            for variant in args.variants:
                values = [r[key] for r in runs_of(rows, dataset, variant) if r[key] is not None]
                if values:
                    names.append(variant)
                    means.append(np.mean(values))
                    stds.append(np.std(values, ddof=1) if len(values) > 1 else 0.0)
            ax.bar(range(len(names)), means, yerr=stds, capsize=3, color="tab:blue")
            ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
            ax.set_title(dataset)
            ax.set_ylabel(label)
    save_figure(fig, args.out / "bars.png", f"test errors, mean ± std over {len(args.seeds)} seeds")

    curves = [("k_eff_curve", "K_eff"), ("gate_l1_curve", "sum of gates (L1 term)")]
    fig, grid = figure_grid(len(curves), len(args.datasets))
    for (key, label), axes in zip(curves, grid):
        for ax, dataset in zip(axes, args.datasets):
            for variant in args.variants:
                runs = [r[key] for r in runs_of(rows, dataset, variant) if r.get(key)]
                if runs and "fixed_k" not in variant:
                    length = min(map(len, runs))
                    mean = np.mean([c[:length] for c in runs], axis=0)
                    ax.plot(np.arange(1, length + 1), mean, marker=".", label=variant)
            ax.set_title(dataset)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.legend(fontsize=7)
    save_figure(fig, args.out / "k_eff.png", "learned gates over training (mean over seeds)")

    if any(r["separation_errors"] for r in rows):
        fig, axes = figure_row(1)
        centres = 0.5 * (np.array(SEPARATION_BINS[:-1]) + np.array(SEPARATION_BINS[1:]))
        for variant in args.variants:
            curve = separation_curve(rows, variant)
            if curve is not None:
                axes[0].plot(centres, curve, marker="o", label=variant)
        axes[0].set_xlabel("centre-of-mass separation (Å)")
        axes[0].set_ylabel("energy MAE (meV/atom)")
        axes[0].legend(fontsize=7)
        save_figure(fig, args.out / "separation.png", "long-range test set: error by separation")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/pooling"))
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, help="default 0 1 2 (--quick: 0 1)")
    parser.add_argument("--epochs", type=int, help="default 30 (--quick: 1)")
    parser.add_argument("--max-train-frames", type=int, help="default all (--quick: 16)")
    parser.add_argument("--max-test-frames", type=int, help="default all (--quick: 8)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process")
    parser.add_argument(
        "--gate-penalty",
        type=float,
        help="λ of the L1 gate penalty for the learned-gate variants (default: the configs', 1e-3)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke test: 1 epoch, 16 train and 8 test frames"
    )
    parser.add_argument(
        "--only", nargs=3, metavar=("DATASET", "VARIANT", "SEED"), help=argparse.SUPPRESS
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    quick = {"epochs": 1, "max_train_frames": 16, "max_test_frames": 8, "seeds": [0, 1]}
    full = {"epochs": 30, "max_train_frames": None, "max_test_frames": None, "seeds": [0, 1, 2]}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:  # explicit settings win over --quick
            setattr(args, name, value)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only:
        dataset, variant, seed = args.only
        run_one(args, dataset, variant, int(seed))
        return 0
    combos = [(d, v, s) for d in args.datasets for v in args.variants for s in args.seeds]
    for d in args.datasets:  # made once here, before parallel runs could race to write it
        test_frames_file(args, d, refresh=True)
    start = time.perf_counter()
    argv = [*raw, "--out", str(args.out)] if "--out" not in raw else raw
    todo = [
        Job(
            "-".join(map(str, c)),
            (__file__, *argv, "--only", *map(str, c)),
            run_dir(args, *c) / "row.json",
            c,
        )
        for c in combos
    ]
    found = sum(job.result.is_file() for job in todo)
    rows = sweep(todo, budget(args), args.out, args.jobs, lambda *c: run_one(args, *c))
    for row in rows:  # rows made before the gate curve was recorded: read it from their logs
        if "gate_l1_curve" not in row:
            key = (row["dataset"], row["variant"], row["seed"])
            row["gate_l1_curve"] = epoch_curve(run_dir(args, *key), "gate_l1")
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    text = table(rows, args)
    if contrast := contrast_table(rows, args):
        heading = "equivariant vs invariant, Fourier clusters vs learned gates"
        text += f"\nPooling contrasts, {heading} (Welch's t-test over seeds):\n\n" + contrast
    if any(r["separation_errors"] for r in rows):
        text += "\nLong-range test set, energy MAE (meV/atom) by centre-of-mass separation:\n\n"
        config = load_config(REPO / "configs" / "longrange.yaml", [])
        cutoff = config.model["r_max"]
        text += separation_table(rows, args.variants, cutoff)
        text += "\n" + local_bound_line(resolve_path(test_frames_file(args, "longrange")), cutoff)
    (args.out / "table.md").write_text(text)
    plots(rows, args)
    print(text)
    print(
        f"wall time {time.perf_counter() - start:.0f} s: {len(combos) - found} runs trained, "
        f"{found} found done ({args.out})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
