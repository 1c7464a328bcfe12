"""Running one benchmark case of :mod:`eqna.benchmarks.accuracy`: eqna and MACE trained at once
in subprocesses (one thread each), MACE stopped at the budget, its checkpoint evaluated.

MACE has no time limit: it is started with a huge ``--max_num_epochs`` and sent SIGTERM (SIGKILL
``KILL_GRACE_S`` later) once it has trained for the budget, counted from the moment its training
loop starts (``tools/bench_accuracy_mace.py`` writes that time to ``OUT/start``), data loading
and statistics excluded, as for eqna's ``training.max_time_minutes``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ase.io import read, write

from eqna.benchmarks.accuracy import (
    DATASETS,
    REPO,
    MaceSettings,
    eqna_overrides,
    mace_args,
    ratios,
    score,
    to_mace_frames,
)

MACE_SCRIPT = REPO / "tools" / "bench_accuracy_mace.py"
KILL_GRACE_S = 30.0
SLACK_S = 900.0  # data loading before the budget, test evaluation after it
VERSION_KEYS = ("mace_version", "torch_version", "dtype")


class BenchError(RuntimeError):
    """A subprocess failed; the message names its log."""


def _env(threads: int) -> dict[str, str]:
    threads_s = str(threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads_s, "MKL_NUM_THREADS": threads_s}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return env


def _start(argv: list[str], log: Path, threads: int = 1) -> subprocess.Popen:
    with open(log, "w") as handle:
        return subprocess.Popen(argv, cwd=REPO, env=_env(threads), stdout=handle, stderr=handle)


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _check(name: str, code: int, log: Path) -> None:
    if code != 0:
        raise BenchError(f"{name} failed (exit {code}); log: {log}")


def run_pair(eqna: list[str], mace: list[str] | None, budget_s: float, logs: Path) -> float | None:
    """Start eqna (and MACE, whose wrapper writes its training start time to ``logs/start``)
    together; stop MACE after ``budget_s`` of training. Returns MACE's training seconds (None
    without MACE). Raises BenchError naming the log of a failed or stuck subprocess."""
    eqna_log, mace_log, marker = logs / "eqna_train.log", logs / "mace_train.log", logs / "start"
    procs = {"eqna": _start(eqna, eqna_log)}
    if mace is not None:
        procs["mace"] = _start(mace, mace_log)
    begin, stopped, seconds = time.time(), None, None
    try:
        while any(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
            now = time.time()
            _check("eqna training", procs["eqna"].poll() or 0, eqna_log)
            if now - begin > budget_s + SLACK_S:
                raise BenchError(f"timed out after {now - begin:.0f} s; logs in {logs}")
            code = procs["mace"].poll() if mace is not None else 0
            if stopped is None and code is not None:  # MACE ended by itself: must be a success
                _check("MACE training", code, mace_log)
                seconds = seconds or (now - float(marker.read_text()) if marker.is_file() else None)
            elif stopped is None and marker.is_file():
                seconds = now - float(marker.read_text())
                if seconds >= budget_s:
                    stopped = now
                    procs["mace"].terminate()
            elif stopped is not None and code is None and now - stopped > KILL_GRACE_S:
                procs["mace"].kill()
    finally:
        for proc in procs.values():
            _stop(proc)
    if mace is not None and seconds is None:
        raise BenchError(f"MACE never started training; log: {mace_log}")
    return seconds


def eqna_result(out: Path, n_train: int, batch_size: int) -> dict:
    """eqna's test metrics, epochs (fraction from the optimiser steps) and structures/s."""
    import torch

    metrics = json.loads((out / "test_metrics.json").read_text())
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    epochs = last["global_step"] / math.ceil(n_train / batch_size)  # eqna keeps the last batch
    seconds = metrics["train_seconds"]
    quantities = {
        k: v for k, v in metrics.items() if k.split("_")[0] in ("energy", "forces", "stress")
    }
    return {**quantities, "epochs": epochs, "train_seconds": seconds,
            "structures_per_s": epochs * n_train / seconds, "n_train": n_train}  # fmt: skip


def mace_result(work: Path, info: dict, seconds: float, metrics: dict) -> dict:
    """MACE's test metrics, epochs (optimiser steps / steps per epoch) and structures/s."""
    steps = 0
    for path in (work / "results").glob("*_train.txt"):
        steps += sum('"mode": "opt"' in line for line in path.read_text().splitlines())
    epochs = steps / info["steps_per_epoch"]
    kept = {k: info[k] for k in ("n_train", "checkpoint_epoch", "stage_two")}
    speed = epochs * info["n_train"] / seconds
    return {**metrics, "epochs": epochs, "train_seconds": seconds,
            "structures_per_s": speed, **kept}  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One data set and budget, trained in ``out`` (emptied first)."""

    dataset: str
    minutes: float
    out: Path
    data_dir: Path
    eqna_config: Path | None = None  # default: the data set's configs/<name>.yaml
    subset: int | None = None  # only the first N structures of the train and test files


def run_case(case: Case, mace: MaceSettings | None = None) -> dict:
    """Train eqna (and MACE); returns both codes' results, their ratio, the MACE arguments."""
    from eqna.benchmarks.sweep import fresh_run_dir
    from eqna.train.config import ConfigError, load_config

    ds, out, budget = DATASETS[case.dataset], fresh_run_dir(case.out), 60.0 * case.minutes
    paths, train, test = _data(case, ds, out)
    config_path = Path(case.eqna_config or REPO / ds.config).resolve()
    overrides = eqna_overrides(paths, case.minutes)
    try:
        config = load_config(config_path, overrides)
    except ConfigError as err:
        raise BenchError(f"eqna config {config_path}:\n{err}") from None
    eqna = [sys.executable, "-m", "eqna.train", str(config_path), *overrides]
    eqna += ["-o", str(out / "eqna")]
    n_train = len(train) - round(config.data.valid_fraction * len(train))
    result = {"dataset": case.dataset, "minutes": case.minutes, "subset": case.subset,
              "test": f"{Path(ds.test).name}, {len(test)} structures",
              "eqna_config": str(config_path)}  # fmt: skip
    margs = mace_train = None
    if mace is not None:
        isolated = read(paths["e0s"], ":") if paths["e0s"] else []
        margs = _prepare_mace(out / "mace", train, test, isolated, config, ds.stress, mace)
        fraction = 1.0 if mace.stage_two_fraction is None else mace.stage_two_fraction
        mace_train = [str(mace.venv / "bin" / "python"), str(MACE_SCRIPT), "train",
                      "--marker", str(out / "start"), "--budget-seconds", str(budget),
                      "--stage-two-fraction", str(fraction), "--", *margs]  # fmt: skip
    mace_seconds = run_pair(eqna, mace_train, budget, out)
    result["eqna"] = eqna_result(out / "eqna", n_train, config.data.batch_size)
    if mace is not None:
        info = _mace_predict(mace, margs, out, ds.stress, config.data.valid_batch_size)
        metrics = score(test, read(out / "mace" / "predictions.xyz", ":"), "MACE_")
        result["mace"] = mace_result(out / "mace", info, mace_seconds, metrics)
        result["ratio"] = ratios(result["eqna"], result["mace"])
        result["mace_args"], result["mace_versions"] = margs, {k: info[k] for k in VERSION_KEYS}
    return result


def _data(case: Case, ds, out: Path):
    """The files both codes read (``case.subset``: copies of the first N structures in
    ``out/data``; ../shared is never written) and the train and test structures."""
    paths = {"train": case.data_dir / ds.train, "test": case.data_dir / ds.test}
    paths["e0s"] = case.data_dir / ds.e0s if ds.e0s else None
    train, test = read(paths["train"], ":"), read(paths["test"], ":")
    if case.subset:
        train, test = train[: case.subset], test[: case.subset]
        (out / "data").mkdir()
        for key, frames in (("train", train), ("test", test)):
            paths[key] = out / "data" / f"{key}.xyz"
            write(paths[key], frames, format="extxyz")
    return paths, train, test


def _prepare_mace(work: Path, train, test, isolated, config, stress: bool, mace) -> list[str]:
    """MACE's copies of the data (REF_ keys, isolated atoms first) in ``work``; its arguments."""
    work.mkdir()
    write(work / "train.xyz", to_mace_frames(train, isolated), format="extxyz")
    write(work / "test.xyz", to_mace_frames(test), format="extxyz")
    return mace_args(config, work / "train.xyz", work, stress, bool(isolated), mace)


def _mace_predict(mace: MaceSettings, margs: list[str], out: Path, stress: bool, batch: int):
    """Evaluate MACE's newest checkpoint on the test file (all cores: training is over)."""
    work, log = out / "mace", out / "mace_predict.log"
    if not list((work / "checkpoints").glob("*.pt")):
        raise BenchError(
            "MACE finished no epoch within the budget, so it wrote no checkpoint (its "
            f"optimiser steps are in {work}/results); give it more --minutes or a --subset; "
            f"log: {out / 'mace_train.log'}"
        )
    argv = [str(mace.venv / "bin" / "python"), str(MACE_SCRIPT), "predict",
            "--test", str(work / "test.xyz"), "--out", str(work / "predictions.xyz"),
            "--info", str(work / "predict.json"), "--batch-size", str(batch),
            *(["--stress"] if stress else []), "--", *margs,
            "--log_dir", str(work / "predict_logs"),
            "--results_dir", str(work / "predict_results")]  # fmt: skip
    proc = _start(argv, log, threads=os.cpu_count() or 1)
    try:
        code = proc.wait(SLACK_S)
    except subprocess.TimeoutExpired:
        _stop(proc)
        raise BenchError(f"MACE evaluation timed out; log: {log}") from None
    _check("MACE evaluation", code, log)
    return json.loads((work / "predict.json").read_text())
