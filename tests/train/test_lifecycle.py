"""Training that survives faults: one run per folder, locks, resume after SIGKILL, SIGTERM,
divergence, export of any checkpoint."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from helpers import tiny_config

from eqna.models.io import load_model
from eqna.train.cli import main
from eqna.train.run_folder import LOCK, RunFolderError, RunLock, check_writable


def _config(tmp_path, **training) -> str:
    path = tmp_path / "tiny.yaml"
    config = tiny_config(**{"early_stopping_patience": None, **training})
    config["data"]["max_train_frames"] = 40
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _epochs(out) -> list[int]:
    with (out / "logs" / "metrics.csv").open(newline="") as handle:
        return [int(r["epoch"]) for r in csv.DictReader(handle) if r.get("val_loss")]


def test_one_run_per_folder(tmp_path, capsys):
    config, out = _config(tmp_path), tmp_path / "run"
    assert main([config, "-o", str(out)]) == 0
    before = (out / "model.pt").stat().st_mtime_ns
    assert main([config, "-o", str(out)]) == 2
    assert "folder is not empty" in capsys.readouterr().err
    assert (out / "model.pt").stat().st_mtime_ns == before  # nothing touched
    assert main([config, "-o", str(out), "--overwrite"]) == 0
    assert not list((out / "checkpoints").glob("*-v1.ckpt"))


def test_resume_needs_a_run_and_the_same_config(tmp_path, capsys):
    config, out = _config(tmp_path), tmp_path / "run"
    assert main([config, "-o", str(out), "--resume"]) == 2
    assert "--resume needs a run folder" in capsys.readouterr().err
    assert main([config, "-o", str(out)]) == 0
    code = main([config, "-o", str(out), "--resume", "training.lr=0.1", "data.batch_size=2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "data.batch_size: 4 in the folder, 2 now" in err and "training.lr: 0.005" in err


def test_a_second_concurrent_training_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / LOCK).write_text(f"{os.getppid()} {os.uname().nodename}\n")  # a live process
    assert main([_config(tmp_path), "-o", str(out)]) == 2
    assert "another training (pid" in capsys.readouterr().err
    (out / LOCK).write_text(f"{2**22 + 12345} {os.uname().nodename}\n")  # a dead one
    with RunLock(out):  # stale: taken over
        assert (out / LOCK).read_text().split()[0] == str(os.getpid())
    assert not (out / LOCK).exists()


def test_an_unwritable_checkpoint_folder_fails_before_training(tmp_path):
    (tmp_path / "checkpoints").write_text("a file where the folder should be")
    with pytest.raises(RunFolderError, match="checkpoints"):
        check_writable(tmp_path)


def test_divergence_stops_at_once_and_exports_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code = main([_config(tmp_path, gradient_clip=None), "training.lr=1e3", "-o", str(out)])
    assert code == 1
    assert "training diverged at epoch" in capsys.readouterr().err
    assert not (out / "model.pt").exists()


def _start(config, out, *extra):
    command = [sys.executable, "-m", "eqna.train", config, "-o", str(out), *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_epoch(out, epoch: int, process, limit: float = 180.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < limit:
        csv_file = out / "logs" / "metrics.csv"
        if (out / "checkpoints" / "last.ckpt").is_file() and csv_file.is_file():
            if len(_epochs(out)) >= epoch:
                return
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.2)
    raise AssertionError(f"no epoch {epoch} within {limit} s")


def test_sigkill_then_resume_continues_the_run(tmp_path):
    config, out = _config(tmp_path, max_epochs=6), tmp_path / "run"
    process = _start(config, out)
    _wait_for_epoch(out, 2, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = _epochs(out)
    assert 2 <= len(done) < 6
    resumed = subprocess.run(
        [sys.executable, "-m", "eqna.train", config, "-o", str(out), "--resume"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert _epochs(out) == list(range(6))  # every epoch once: continued, not restarted
    first_new = min(int(line.split()[1].split("/")[0]) for line in resumed.stderr.splitlines()
                    if line.startswith("epoch "))  # fmt: skip
    assert first_new >= len(done)  # at most the interrupted epoch is repeated
    _, payload = load_model(out / "model.pt")
    assert payload["extra"]["epochs"] == 6


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_exports_and_exits(tmp_path, signum, code):
    config, out = _config(tmp_path, max_epochs=50), tmp_path / "run"
    process = _start(config, out)
    _wait_for_epoch(out, 1, process)
    process.send_signal(signum)
    output, _ = process.communicate(timeout=120)
    name = signal.Signals(signum).name
    assert process.returncode == code, output
    assert "--resume" in output and f"INTERRUPTED ({name}" in output
    _, payload = load_model(out / "model.pt")
    assert payload["extra"]["interrupted"].startswith(f"{name} at epoch")
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["eqna"]["family"]
    assert (
        main(["--export", str(out / "checkpoints" / "last.ckpt"), "-o", str(tmp_path / "m.pt")])
        == 0
    )
    model, _ = load_model(tmp_path / "m.pt")
    assert model.is_potential


def test_last_checkpoint_follows_every_epoch_without_improvement(tmp_path):
    """ModelCheckpoint writes last.ckpt only when val_loss improves; the resume point must
    not stay behind at the last improvement."""
    out = tmp_path / "run"
    config = _config(tmp_path, max_epochs=3, lr=1e-30, ema_decay=None)  # weights never move
    assert main([config, "-o", str(out)]) == 0
    with (out / "logs" / "metrics.csv").open(newline="") as handle:
        losses = [r["val_loss"] for r in csv.DictReader(handle) if r.get("val_loss")]
    assert len(set(losses)) == 1  # no epoch after the first improves
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2


def test_an_epoch_line_after_resuming_mid_epoch(caplog):
    """A run resumed from a checkpoint taken inside an epoch ends that epoch without starting
    it: its line still prints, timed from the start of the session."""
    from types import SimpleNamespace

    import torch

    from eqna.train.epoch_log import EpochLine

    trainer = SimpleNamespace(is_global_zero=True, callback_metrics={"val_loss": 0.5},
                              current_epoch=3, max_epochs=6, optimizers=[])  # fmt: skip
    module = SimpleNamespace(model=torch.nn.Linear(2, 2))
    line = EpochLine()
    line.on_train_start(trainer, module)
    with caplog.at_level("INFO", logger="eqna"):
        line.on_train_epoch_end(trainer, module)
    assert "epoch 4/6  val_loss 0.5" in caplog.text
