"""``python -m eqna.evaluate MODEL DATA [--json out.json] [--plot out.png]``.

Prints energy-per-atom, force and stress MAE/RMSE of a saved model on any ASE-readable file
and optionally writes the metrics as JSON and a parity plot as PNG.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from eqna.data.datasets import DataError, GraphDataset, LabelKeys, read_structures
from eqna.data.graph import UnknownElementError
from eqna.evaluation import evaluate_dataset
from eqna.models.io import load_model
from eqna.train.metrics import UNITS, format_table


def parity_plot(parity: dict, path: str | Path, title: str) -> None:
    """One panel per labelled quantity: predicted vs reference, with the diagonal.

    Energies are per atom and relative to the model's isolated-atom energies E0.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(parity), figsize=(4.2 * len(parity), 4), squeeze=False)
    for ax, (name, (ref, pred)) in zip(axes[0], parity.items()):
        ax.scatter(ref, pred, s=3, alpha=0.4)
        lo, hi = min(ref.min(), pred.min()), max(ref.max(), pred.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        mae = 1000 * abs(ref - pred).mean()
        unit = UNITS[name].replace("meV", "eV")
        ax.set(
            xlabel=f"reference {name} ({unit})",
            ylabel=f"predicted {name} ({unit})",
            title=f"{name}: MAE {mae:.2f} {UNITS[name]}",
        )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eqna.evaluate", description=__doc__)
    parser.add_argument("model", help="model.pt written by eqna.train")
    parser.add_argument("data", help="labelled structures (any ASE format, e.g. extxyz)")
    parser.add_argument("--json", help="write the metrics to this JSON file")
    parser.add_argument("--plot", help="write a parity plot to this PNG file")
    parser.add_argument("--energy-key", default="energy")
    parser.add_argument("--forces-key", default="forces")
    parser.add_argument("--stress-key", default="stress")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=["float32", "float64"], help="default: as saved")
    args = parser.parse_args(argv)
    try:
        dtype = getattr(torch, args.dtype) if args.dtype else None
        model, _ = load_model(args.model, dtype=dtype)
        energy_model = model.energy_model
        label_keys = LabelKeys(args.energy_key, args.forces_key, args.stress_key)
        dataset = GraphDataset(
            read_structures(args.data),
            energy_model.r_max,
            energy_model.elements.tolist(),
            label_keys,
            args.data,
        )
    except (FileNotFoundError, ValueError, DataError, UnknownElementError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics, parity = evaluate_dataset(model, dataset, args.batch_size)
    print(format_table(metrics, f"{args.model} on {args.data} ({len(dataset)} structures)"))
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
    if args.plot:
        parity_plot(parity, args.plot, f"{Path(args.model).name} on {Path(args.data).name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
