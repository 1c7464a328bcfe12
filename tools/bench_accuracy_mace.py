"""The MACE side of ``tools/bench_accuracy.py``; runs in the MACE venv (imports mace, never eqna).

    VENV/bin/python tools/bench_accuracy_mace.py train --marker M --budget-seconds S \\
        --stage-two-fraction F -- MACE_RUN_TRAIN_ARGS...
    VENV/bin/python tools/bench_accuracy_mace.py predict --test T.xyz --out P.xyz --info I.json \\
        [--stress] [--batch-size N] -- MACE_RUN_TRAIN_ARGS...

``train`` is ``mace_run_train`` (mace 0.3.16) with three additions: the time training starts is
written to ``--marker`` (the caller's budget clock); Stage Two starts at the first epoch that
ends after ``F * S`` seconds of training (``--start_swa`` counts epochs, which a wall budget
cannot know in advance); SIGTERM waits while a checkpoint is written, so the caller's kill at
the budget never leaves a truncated checkpoint (MACE deletes the previous one first).

``predict`` rebuilds the model exactly as ``mace_run_train`` does from the same arguments (same
data, statistics and E0s), loads the newest checkpoint (``*_epoch-N.pt`` or ``*_epoch-N_swa.pt``,
highest N: MACE writes one, with the EMA weights, whenever validation improves), and writes the
test structures with ``MACE_energy`` (eV), ``MACE_forces`` (eV/Å) and, with ``--stress``,
``MACE_stress`` (3x3, eV/Å³, ASE sign) beside their labels, as ``mace_eval_configs`` does.
"""

import argparse
import json
import logging
import re
import signal
import sys
import time
from pathlib import Path

import ase.io
import mace
import torch
from mace import data, tools
from mace.cli import run_train
from mace.tools import torch_geometric
from mace.tools.checkpoint import CheckpointIO

TRAIN_MODULE = sys.modules["mace.tools.train"]  # `mace.tools.train` itself names the function


class _Predicted(Exception):
    """Raised once the predictions are written: the rest of mace_run_train must not run."""


def _run_mace(mace_args: list[str]) -> None:
    sys.argv = ["mace_run_train", *mace_args]
    run_train.main()


def _protect_checkpoints() -> None:
    """A SIGTERM that arrives while a checkpoint is written acts once it is complete."""
    save = CheckpointIO.save

    def guarded(self, *args, **kwargs):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            save(self, *args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    CheckpointIO.save = guarded


def train(args) -> None:
    original_train, original_epoch = TRAIN_MODULE.train, TRAIN_MODULE.train_one_epoch
    switch_after = args.stage_two_fraction * args.budget_seconds

    def timed_train(**kwargs):
        start = time.time()
        Path(args.marker).write_text(f"{start}\n")
        swa, handler = kwargs.get("swa"), kwargs["checkpoint_handler"]

        def one_epoch(**epoch_kwargs):
            original_epoch(**epoch_kwargs)
            epoch = epoch_kwargs["epoch"]
            if swa is not None and swa.start > epoch + 1 and time.time() - start >= switch_after:
                swa.start = handler.io.swa_start = epoch + 1
                logging.info("bench_accuracy: Stage Two from epoch %d (time-based)", epoch + 1)

        TRAIN_MODULE.train_one_epoch = one_epoch
        return original_train(**kwargs)

    _protect_checkpoints()
    tools.train = timed_train
    _run_mace(args.mace_args)


def newest_checkpoint(directory: Path, tag: str) -> tuple[int, bool, Path] | None:
    """(epoch, stage two, path) of the highest-epoch checkpoint of ``tag``; None if none."""
    pattern = re.compile(rf"^{re.escape(tag)}_epoch-(\d+)(_swa)?\.pt$")
    found = [
        (int(m[1]), m[2] is not None, path)
        for path in directory.glob("*.pt")
        if (m := pattern.match(path.name))
    ]
    return max(found) if found else None


def _write_predictions(model, args) -> int:
    frames = ase.io.read(args.test, ":")
    z_table = tools.AtomicNumberTable([int(z) for z in model.atomic_numbers])
    graphs = [
        data.AtomicData.from_config(
            data.config_from_atoms(atoms),
            z_table=z_table,
            cutoff=float(model.r_max),
            heads=getattr(model, "heads", None),
        )
        for atoms in frames
    ]
    loader = torch_geometric.dataloader.DataLoader(graphs, batch_size=args.batch_size)
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    done = 0
    for batch in loader:
        out = model(batch.to_dict(), training=False, compute_stress=args.stress)
        sizes = (batch.ptr[1:] - batch.ptr[:-1]).tolist()
        forces = torch.split(out["forces"].detach(), sizes)
        for i, atoms in enumerate(frames[done : done + len(sizes)]):
            atoms.info["MACE_energy"] = float(out["energy"][i])
            atoms.arrays["MACE_forces"] = forces[i].double().numpy()
            if args.stress:
                atoms.info["MACE_stress"] = out["stress"][i].detach().double().numpy().ravel()
        done += len(sizes)
    ase.io.write(args.out, frames, format="extxyz")
    return len(frames)


def predict(args) -> None:
    def evaluate_newest(**kwargs):
        handler = kwargs["checkpoint_handler"]
        newest = newest_checkpoint(Path(handler.io.directory), handler.io.tag)
        if newest is None:
            raise SystemExit(f"no checkpoint of {handler.io.tag} in {handler.io.directory}")
        epoch, stage_two, path = newest
        model = kwargs["model"]
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
        count = _write_predictions(model, args)
        info = {
            "checkpoint": str(path),
            "checkpoint_epoch": epoch,
            "stage_two": stage_two,
            "n_train": len(kwargs["train_loader"].dataset),
            "steps_per_epoch": len(kwargs["train_loader"]),
            "test_structures": count,
            "mace_version": mace.__version__,
            "torch_version": torch.__version__,
            "dtype": str(torch.get_default_dtype()).replace("torch.", ""),
        }
        Path(args.info).write_text(json.dumps(info, indent=2))
        raise _Predicted

    tools.train = evaluate_newest
    try:
        _run_mace(args.mace_args)
    except _Predicted:
        return
    raise SystemExit("mace_run_train returned before training: nothing was predicted")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("train")
    t.add_argument("--marker", required=True, help="file that receives the training start time")
    t.add_argument("--budget-seconds", type=float, required=True)
    t.add_argument("--stage-two-fraction", type=float, default=0.75)
    e = sub.add_parser("predict")
    e.add_argument("--test", required=True, help="structures to predict (extxyz)")
    e.add_argument("--out", required=True, help="extxyz with the MACE_ predictions")
    e.add_argument("--info", required=True, help="JSON: checkpoint, epoch, training set size")
    e.add_argument("--stress", action="store_true")
    e.add_argument("--batch-size", type=int, default=32)
    for s in (t, e):
        s.add_argument("mace_args", nargs=argparse.REMAINDER, help="-- mace_run_train arguments")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.mace_args[:1] == ["--"]:
        args.mace_args = args.mace_args[1:]
    train(args) if args.mode == "train" else predict(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
