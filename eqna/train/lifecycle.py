"""What keeps a training's work through faults: atomic checkpoints, a resume point every few
minutes, signals turned into a checkpoint and a clean stop, and metrics that continue."""

from __future__ import annotations

import csv
import logging
import os
import signal
import time
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.plugins.io import TorchCheckpointIO

from eqna.train.distributed import rank_zero_decision

LOG = logging.getLogger("eqna")
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}  # 128 + signal, as shells report


class Interrupted(Exception):
    """Training stopped by a signal after saving a resumable checkpoint."""

    def __init__(self, signum: int, epoch: int):
        self.signum, self.epoch = signum, epoch
        super().__init__(f"{signal.Signals(signum).name} at epoch {epoch}")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        tmp = f"{path}.tmp"
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class StopRequest:
    """SIGTERM (a scheduler's time limit) or the first Ctrl-C asks the run to stop cleanly;
    a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self) -> StopRequest:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        LOG.info("%s received: saving a checkpoint and stopping", signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


class ResumePoint(pl.Callback):
    """Writes ``last.ckpt`` at every epoch's end, every ``every_minutes`` inside long epochs
    and when asked to stop."""

    def __init__(self, path: Path, every_minutes: float, stop: StopRequest):
        self.path, self.interval, self.stop = str(path), 60.0 * every_minutes, stop
        self._saved = time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        due = self.stop.signum is not None or time.monotonic() - self._saved >= self.interval
        signum = rank_zero_decision(trainer, self.stop.signum if due else False)
        if signum is False:
            return
        trainer.save_checkpoint(self.path)  # every process: saving is a collective under DDP
        self._saved = time.monotonic()
        if signum is not None:
            raise Interrupted(signum, trainer.current_epoch)

    def on_validation_end(self, trainer, pl_module):
        if not trainer.sanity_checking:  # ModelCheckpoint (run after this) rewrites last.ckpt
            trainer.save_checkpoint(self.path)  # only in epochs that improve val_loss
        self._saved = time.monotonic()


class ContinueMetrics(pl.Callback):
    """On resume, the metrics CSV keeps the rows of the epochs already done and continues.

    Lightning's CSV logger deletes an existing metrics.csv when it starts, so the rows are
    read before the fit and written back once the resumed epoch is known; rows of epochs the
    run will repeat (logged after the checkpoint it resumes from) are dropped.
    """

    def __init__(self, metrics_csv: Path, resuming: bool):
        self.path = Path(metrics_csv)
        self.fields, self.rows = [], []
        if resuming and self.path.is_file():
            with self.path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self.fields, self.rows = list(reader.fieldnames or []), list(reader)

    def on_train_start(self, trainer, pl_module):
        if not self.fields:
            return
        writer = trainer.logger.experiment  # created now: it deletes the old file
        writer.metrics_keys = sorted(self.fields)
        done = [r for r in self.rows if r.get("epoch") and int(r["epoch"]) < trainer.current_epoch]
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=writer.metrics_keys)
            out.writeheader()
            out.writerows(done)
        os.replace(tmp, self.path)
