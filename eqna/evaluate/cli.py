"""``eqna-evaluate MODEL DATA``: a saved model's errors on labelled structures, and its predictions.

Prints energy-per-atom, force and stress MAE/RMSE (or a property model's MAE/RMSE) of MODEL
(a model.pt written by eqna-train, or a zoo name) on DATA (any file ASE reads), overall and,
when the structures carry more than one atoms.info["config_type"], per config_type. Labels are
read with the keys the model was trained with (its config's data.energy_key, ...), so a model
trained on MACE-style files (REF_energy, REF_forces) finds its labels on its own test file.

examples:
  eqna-evaluate runs/acac/model.pt test.xyz
  eqna-evaluate model.pt test.xyz --json metrics.json --plot plots/
  eqna-evaluate model.pt test.xyz --energy-key REF_energy --forces-key REF_forces
  eqna-evaluate model.pt unlabelled.xyz --write-xyz predicted.xyz --device cuda

--write-xyz OUT.xyz writes every structure, in input order, with its labels untouched and the
predictions beside them: info["eqna_energy"] (eV), arrays["eqna_forces"] (eV/Å),
arrays["eqna_energies"] (per atom, eV), info["eqna_stress"] (3D-periodic cells; eV/Å³, ASE
sign, Voigt order xx yy zz yz xz xy), info["eqna_<target>"] (property models); --prefix
changes "eqna_". Unlabelled structures are fine with --write-xyz.

Where --plot TARGET writes the parity plot (predicted vs reference) and the error histograms,
one panel per labelled quantity, energies per atom relative to the model's E0s:

  --plot out.png     out.png (parity) and out_errors.png (histograms), beside each other
  --plot plots/      plots/parity.png and plots/errors.png (also for an existing folder)
  --plot runs/acac   runs/acac_parity.png and runs/acac_errors.png

A classifier (model.output classification or multilabel) prints accuracy, ROC-AUC and average
precision per class and their means, and the confusion matrix; --plot writes its ROC curves
(out.png, plots/roc.png or runs/x_roc.png); --write-xyz adds the predicted class under
info["eqna_<label key>"] and info["eqna_probabilities"].

Output folders must exist (a --plot TARGET/ may be new) and are checked before the model runs.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from eqna.cli import add_version, user_error
from eqna.data.datasets import DataError, LabelKeys, read_structures
from eqna.data.graph import UnknownElementError
from eqna.data.lazy import make_dataset
from eqna.evaluate.evaluation import Evaluation, config_types, has_labels, run_evaluation
from eqna.evaluate.plotting import error_histograms, parity_plot, roc_curves
from eqna.evaluate.predictions import DEFAULT_PREFIX, write_atomically, write_predictions_xyz
from eqna.models.interface import AtomisticModel
from eqna.models.io import load_model
from eqna.models.zoo import resolve_model_path
from eqna.nn.neural_atoms import k_eff_summary, neural_atom_layers, set_prune_epsilon
from eqna.tasks.metrics import format_table

USER_ERRORS = (OSError, ValueError, TypeError, UnknownElementError)
"""Bad paths, data, keys, devices or model files (DataError is a ValueError; TypeError is a
model of the wrong kind): one ``error:`` line and exit 2."""


class Loaded(NamedTuple):
    """The model and the data set it is evaluated on, with the keys its labels were read by."""

    model: AtomisticModel
    dataset: torch.utils.data.Dataset  # GraphDataset, or LazyGraphDataset for a store
    label_keys: LabelKeys
    labelled: bool  # any label of a quantity the model predicts was found


def _plot_files(target: str | Path) -> tuple[Path, Path]:
    path = Path(target)
    if path.suffix.lower() == ".png":
        return path, path.with_name(f"{path.stem}_errors.png")
    if path.is_dir() or str(target).endswith(("/", "\\")):
        return path / "parity.png", path / "errors.png"
    return path.with_name(f"{path.name}_parity.png"), path.with_name(f"{path.name}_errors.png")


def plot_paths(target: str | Path) -> tuple[Path, Path]:
    """Where ``--plot TARGET`` writes (parity plot, error histograms); creates the folder.

    ``out.png`` -> ``out.png`` and ``out_errors.png``; a directory (existing, or written with a
    trailing ``/``) -> ``parity.png`` and ``errors.png`` inside it; any other ``prefix`` ->
    ``prefix_parity.png`` and ``prefix_errors.png``.
    """
    paths = _plot_files(target)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    return paths


def roc_path(target: str | Path) -> Path:
    """Where ``--plot TARGET`` writes a classifier's ROC curves: ``out.png`` itself, else
    ``roc.png`` in a folder or ``prefix_roc.png``; creates the folder."""
    path = Path(target)
    if path.suffix.lower() != ".png":
        folder = path.is_dir() or str(target).endswith(("/", "\\"))
        path = path / "roc.png" if folder else path.with_name(f"{path.name}_roc.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _check_folder(option: str, file: Path, may_create: bool = False) -> None:
    """``file`` can be written: its folder exists (or, ``may_create``, its parent does) and is
    writable. Checked before the model runs, so a typo costs nothing."""
    if file.is_dir():
        raise ValueError(f"{option} {file}: is a folder, expected a file name")
    folder = file.parent
    if may_create and not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{option} {file}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {file}: folder {folder} is not writable")


def check_outputs(args: argparse.Namespace) -> None:
    """Every output path of ``args`` can be written (ValueError naming the path if not)."""
    if args.json:
        _check_folder("--json", Path(args.json).expanduser())
    if args.write_xyz:
        _check_folder("--write-xyz", Path(args.write_xyz).expanduser())
    if args.plot:
        target = os.path.expanduser(args.plot)  # a string: Path() drops the trailing "/"
        for file in _plot_files(target):
            _check_folder("--plot", file, may_create=file.parent == Path(target))


def parse_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; a GPU that is not there is an error, not a fallback."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"--device {name!r}: {err}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU found"
            raise ValueError(f"--device {name}: CUDA is not available ({why}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) found")
    return device


def label_keys(args: argparse.Namespace, model: AtomisticModel, payload: dict) -> LabelKeys:
    """The keys given on the command line, else those the model was trained with."""
    trained = (payload.get("config") or {}).get("data") or {}
    targets = ()
    if not model.is_potential:
        target = args.target_key.split(",") if args.target_key else trained.get("target_key")
        targets = (target,) if isinstance(target, str) else tuple(target or ())
    return LabelKeys(
        args.energy_key or trained.get("energy_key") or "energy",
        args.forces_key or trained.get("forces_key") or "forces",
        args.stress_key or trained.get("stress_key") or "stress",
        targets,
        classes=tuple(model.classes) if model.is_classifier else None,
        multilabel=model.output == "multilabel",
    )


def no_labels_error(data: str, structures: list, keys: LabelKeys, is_potential: bool) -> DataError:
    """What was looked for and what the file holds instead, with the options that fix it."""
    info = sorted({key for atoms in structures for key in atoms.info})
    arrays = sorted(
        {key for atoms in structures for key in atoms.arrays} - {"numbers", "positions"}
    )
    if is_potential:
        wanted = f"energy={keys.energy}, forces={keys.forces}, stress={keys.stress}"
        options = "--energy-key/--forces-key/--stress-key"
    else:
        wanted, options = f"target={','.join(keys.properties) or '(none)'}", "--target-key"
    return DataError(
        f"{data}: no labels found for keys {wanted} (info keys present: "
        f"{', '.join(info) or 'none'}; arrays keys present: {', '.join(arrays) or 'none'}); "
        f"pass {options} naming the labels, or --write-xyz OUT.xyz to only predict"
    )


def load(args: argparse.Namespace, device: torch.device) -> Loaded:
    """The model (pruning threshold applied) and the data set, labels read by its keys."""
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model, payload = load_model(resolve_model_path(args.model), device, dtype)
    if args.prune_epsilon is not None:
        set_prune_epsilon(model, args.prune_epsilon)
    structures = read_structures(args.data, args.select)
    keys = label_keys(args, model, payload)
    read_keys = keys
    if keys.properties and not any(all(t in a.info for t in keys.properties) for a in structures):
        # no structure has the target: read none, so the predictions can still be written
        read_keys = LabelKeys(keys.energy, keys.forces, keys.stress)
    dataset = make_dataset(structures, model.graph_spec, read_keys, args.data)  # a store: lazily
    return Loaded(model, dataset, keys, has_labels(model, dataset))


def report(args: argparse.Namespace, loaded: Loaded, evaluation: Evaluation) -> None:
    """The metrics tables (overall, then per config_type) and the learned gates."""
    n = len(loaded.dataset)
    if loaded.labelled:
        print(format_table(evaluation.metrics, f"{args.model} on {args.data} ({n} structures)"))
    for name, metrics in evaluation.by_group.items():
        print()
        count = metrics["num_structures"]
        title = f"config_type {name} ({count} structure{'s' if count != 1 else ''})"
        print(format_table(metrics, title))
    if evaluation.clusters is not None and len(evaluation.clusters):
        rounded = np.rint(evaluation.clusters).astype(int)
        values, counts = np.unique(rounded, return_counts=True)
        print(
            "structures per K (rounded): "
            + ", ".join(f"K={v}: {c}" for v, c in zip(values.tolist(), counts.tolist()))
        )
    for i, layer in enumerate(neural_atom_layers(loaded.model)):
        if layer.gate_logits is not None:  # what pruning at a given epsilon would remove
            gates = sorted(layer.gates().tolist(), reverse=True)
            print(
                f"neural-atom gates, layer {i}, largest first: "
                + " ".join(f"{g:.3f}" for g in gates)
            )


def write_outputs(args: argparse.Namespace, loaded: Loaded, evaluation: Evaluation) -> int:
    """The --write-xyz, --json and --plot files; returns the exit code."""
    if args.write_xyz:
        path = write_predictions_xyz(
            Path(args.write_xyz).expanduser(),
            loaded.dataset.structures,
            evaluation.predictions,
            args.prefix,
            loaded.label_keys.properties,
            loaded.model.classes,
            loaded.model.output == "multilabel",
        )
        n = len(evaluation.predictions)
        print(f"wrote {path}: {n} structures with predictions under {args.prefix}* keys")
    if args.json:
        metrics = dict(evaluation.metrics)
        if evaluation.by_group:
            metrics["by_config_type"] = evaluation.by_group
        text = json.dumps(metrics, indent=2) + "\n"
        write_atomically(Path(args.json).expanduser(), lambda part: part.write_text(text))
    if args.plot and evaluation.scores is not None:  # a classifier: its ROC curves
        title = f"{Path(args.model).name} on {Path(args.data).name}"
        path = roc_path(os.path.expanduser(args.plot))
        model = loaded.model
        multilabel = model.output == "multilabel"
        print(f"wrote {roc_curves(*evaluation.scores, model.classes, multilabel, path, title)}")
    elif args.plot:
        if not evaluation.parity:
            print(f"error: {args.data}: no labelled quantity to plot", file=sys.stderr)
            return 2
        title = f"{Path(args.model).name} on {Path(args.data).name}"
        parity_path, errors_path = plot_paths(os.path.expanduser(args.plot))
        print(f"wrote {parity_plot(evaluation.parity, parity_path, title)}")
        print(f"wrote {error_histograms(evaluation.parity, errors_path, title)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eqna-evaluate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="model.pt written by eqna-train, or a zoo name")
    parser.add_argument(
        "data", help="structures (any ASE format, e.g. extxyz, or an ASE database .db)"
    )
    parser.add_argument(
        "--select", help="rows of an ASE database to evaluate (ASE db selection syntax)"
    )
    parser.add_argument("--json", help="write the metrics to this JSON file")
    parser.add_argument(
        "--plot",
        metavar="TARGET",
        help="write the parity plot and error histograms: a .png file (histograms go to"
        " <stem>_errors.png), a folder, or a prefix (see above)",
    )
    parser.add_argument(
        "--write-xyz", metavar="OUT.xyz", help="write the structures with the predictions"
    )
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help="key prefix of the predictions in --write-xyz"
    )
    for quantity in ("energy", "forces", "stress"):
        parser.add_argument(
            f"--{quantity}-key",
            help=f"key of the reference {quantity} (default: as trained, else {quantity})",
        )
    parser.add_argument(
        "--target-key",
        help="property models: atoms.info key(s) of the target, comma-separated (default: as"
        " trained)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dtype", choices=["float32", "float64"], help="default: as saved")
    parser.add_argument(
        "--prune-epsilon",
        type=float,
        help="override the neural-atom pruning threshold (0: no pruning) to measure what "
        "pruning costs on this data before deploying a model",
    )
    return add_version(parser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_outputs(args)
        device = parse_device(args.device)
        loaded = load(args, device)
        if not loaded.labelled and (not args.write_xyz or args.plot):
            raise no_labels_error(
                args.data, loaded.dataset.structures, loaded.label_keys, loaded.model.is_potential
            )
    except USER_ERRORS as err:
        return user_error(err, args.debug)
    evaluation = run_evaluation(
        loaded.model,
        loaded.dataset,
        args.batch_size,
        device=device,
        groups=config_types(loaded.dataset.structures) if loaded.labelled else None,
        keep_predictions=bool(args.write_xyz),
    )
    evaluation.metrics.update(k_eff_summary(loaded.model))
    report(args, loaded, evaluation)
    try:
        return write_outputs(args, loaded, evaluation)
    except USER_ERRORS as err:
        return user_error(err, args.debug)


if __name__ == "__main__":
    sys.exit(main())
