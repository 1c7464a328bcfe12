"""One plain line per epoch: what batch jobs and log files need instead of a progress bar."""

import logging
import sys
import time

import pytorch_lightning as pl

from eqna.cli import configure_logging
from eqna.nn.neural_atoms import k_eff_summary

LOG = logging.getLogger("eqna")
SHOWN = ("train_loss", "val_loss", "val_energy_per_atom_mae", "val_forces_mae",
         "val_stress_mae", "val_property_mae", "val_accuracy", "val_exact_match",
         "k_eff")  # fmt: skip


def use_progress_bar(wanted: bool) -> bool:
    """The bar only on a terminal: in a file its carriage-return frames are noise."""
    return wanted and sys.stdout.isatty()


class EpochLine(pl.Callback):
    """Logs ``epoch 3/100  train_loss 0.12  val_loss ...  lr 1e-3  12.1 s`` once per epoch,
    after its validation (Lightning validates inside the training epoch)."""

    def setup(self, trainer, pl_module, stage):
        if not LOG.handlers:  # a process ddp_spawn started: nothing configured its logging
            configure_logging()

    def on_train_start(self, trainer, pl_module):
        self._start = time.perf_counter()  # a run resumed mid-epoch starts no epoch first

    def on_train_epoch_start(self, trainer, pl_module):
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        metrics = dict(trainer.callback_metrics)
        metrics.update(k_eff_summary(pl_module.model))
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        parts += [f"{k} {float(metrics[k]):.4g}" for k in SHOWN if k in metrics]
        if "val_clusters_mean" in metrics:  # Fourier neural atoms: K per structure
            mean, std, low, high = (float(metrics[f"val_clusters_{k}"])
                                    for k in ("mean", "std", "min", "max"))  # fmt: skip
            parts.append(f"K {mean:.3g}±{std:.2g} ({low:.3g}-{high:.3g})")
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        if lr is not None:
            parts.append(f"lr {lr:.3g}")
        parts.append(f"{time.perf_counter() - self._start:.1f} s")
        LOG.info("  ".join(parts))
