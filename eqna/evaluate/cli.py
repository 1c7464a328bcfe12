"""``python -m eqna.evaluate MODEL DATA [--json out.json] [--plot TARGET]``.

Prints energy-per-atom, force and stress MAE/RMSE of a saved model on any ASE-readable file
and optionally writes the metrics as JSON and PNG plots: a parity plot (predicted vs reference)
and error histograms (predicted - reference, with MAE and RMSE), one panel per labelled
quantity, energies per atom relative to the model's E0s. Where --plot TARGET writes:

  --plot out.png     out.png (parity) and out_errors.png (histograms), beside each other
  --plot plots/      plots/parity.png and plots/errors.png (also for an existing folder)
  --plot runs/acac   runs/acac_parity.png and runs/acac_errors.png
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from eqna.data.datasets import DataError, GraphDataset, LabelKeys, read_structures
from eqna.data.graph import UnknownElementError
from eqna.evaluate.evaluation import evaluate_dataset
from eqna.models.io import load_model
from eqna.models.zoo import resolve_model_path
from eqna.nn.neural_atoms import k_eff_summary, neural_atom_layers, set_prune_epsilon
from eqna.evaluate.plotting import error_histograms, parity_plot
from eqna.tasks.metrics import format_table


def plot_paths(target: str | Path) -> tuple[Path, Path]:
    """Where ``--plot TARGET`` writes (parity plot, error histograms); creates the folder.

    ``out.png`` -> ``out.png`` and ``out_errors.png``; a directory (existing, or written with a
    trailing ``/``) -> ``parity.png`` and ``errors.png`` inside it; any other ``prefix`` ->
    ``prefix_parity.png`` and ``prefix_errors.png``.
    """
    path = Path(target)
    if path.suffix.lower() == ".png":
        paths = path, path.with_name(f"{path.stem}_errors.png")
    elif path.is_dir() or str(target).endswith(("/", "\\")):
        paths = path / "parity.png", path / "errors.png"
    else:
        paths = path.with_name(f"{path.name}_parity.png"), path.with_name(f"{path.name}_errors.png")
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eqna.evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model.pt written by eqna.train, or a zoo name")
    parser.add_argument("data", help="labelled structures (any ASE format, e.g. extxyz)")
    parser.add_argument("--json", help="write the metrics to this JSON file")
    parser.add_argument(
        "--plot",
        metavar="TARGET",
        help="write the parity plot and error histograms: a .png file (histograms go to"
        " <stem>_errors.png), a folder, or a prefix (see above)",
    )
    parser.add_argument("--energy-key", default="energy")
    parser.add_argument("--forces-key", default="forces")
    parser.add_argument("--stress-key", default="stress")
    parser.add_argument(
        "--target-key",
        help="property models: atoms.info key(s) of the target (default: as trained)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=["float32", "float64"], help="default: as saved")
    parser.add_argument(
        "--prune-epsilon",
        type=float,
        help="override the neural-atom pruning threshold (0: no pruning) to measure what "
        "pruning costs on this data before deploying a model",
    )
    args = parser.parse_args(argv)
    try:
        dtype = getattr(torch, args.dtype) if args.dtype else None
        model, payload = load_model(resolve_model_path(args.model), dtype=dtype)
        if args.prune_epsilon is not None:
            set_prune_epsilon(model, args.prune_epsilon)
        targets = ()
        if not model.is_potential:
            target = args.target_key or payload["config"].get("data", {}).get("target_key")
            targets = (target,) if isinstance(target, str) else tuple(target or ())
        label_keys = LabelKeys(args.energy_key, args.forces_key, args.stress_key, targets)
        dataset = GraphDataset(read_structures(args.data), model.graph_spec, label_keys, args.data)
    except (FileNotFoundError, ValueError, DataError, UnknownElementError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    metrics, parity = evaluate_dataset(model, dataset, args.batch_size)
    metrics.update(k_eff_summary(model))
    print(format_table(metrics, f"{args.model} on {args.data} ({len(dataset)} structures)"))
    for i, layer in enumerate(neural_atom_layers(model)):
        if layer.gate_logits is not None:  # what pruning at a given epsilon would remove
            gates = sorted(layer.gates().tolist(), reverse=True)
            print(
                f"neural-atom gates, layer {i}, largest first: "
                + " ".join(f"{g:.3f}" for g in gates)
            )
    if args.json:
        Path(args.json).write_text(json.dumps(metrics, indent=2))
    if args.plot:
        if not parity:
            print(f"error: {args.data}: no labelled quantity to plot", file=sys.stderr)
            return 2
        title = f"{Path(args.model).name} on {Path(args.data).name}"
        parity_path, errors_path = plot_paths(args.plot)
        print(f"wrote {parity_plot(parity, parity_path, title)}")
        print(f"wrote {error_histograms(parity, errors_path, title)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
