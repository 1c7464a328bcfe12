"""The training recipe over the budget: a per-step warm-up + cosine learning rate
(``training.scheduler: cosine_time``) and the switch to stage two (``training.stage_two_*``).

Both follow the budget's progress in [0, 1]: the larger of the fraction of
``max_time_minutes`` spent (training wall time, resumed sessions included) and the fraction of
the ``max_epochs`` optimizer steps done, so it reaches 1 where the first budget runs out.
Every value derives from that progress and the config at each step, so a resumed run
continues the same schedule; the stage is kept in the checkpoint by the module.
"""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

from eqna.train.distributed import rank_zero_decision

LOG = logging.getLogger("eqna")
_TOLERANCE = 1e-9  # progress 0.75 of 48 steps is 36/48: switch exactly there


def budget_progress(
    seconds: float, max_minutes: float | None, steps: int, total_steps: float
) -> float:
    """The budget's fraction used, clipped to [0, 1].

    Args:
        seconds: training wall time so far (all sessions).
        max_minutes: the time budget; None: steps only.
        steps: optimizer steps done.
        total_steps: optimizer steps of ``max_epochs`` epochs (may be inf).
    """
    fractions = [steps / total_steps] if math.isfinite(total_steps) and total_steps > 0 else [0.0]
    if max_minutes:
        fractions.append(seconds / (60.0 * max_minutes))
    return min(1.0, max(0.0, *fractions))


def warmup_cosine(
    progress: float, peak: float, start: float, floor: float, warmup: float, end: float = 1.0
) -> float:
    """Learning rate at ``progress``: linear from ``start`` to ``peak`` over [0, warmup],
    cosine from ``peak`` down to ``floor`` over [warmup, end], ``floor`` after ``end``."""
    if progress < warmup:
        return start + (peak - start) * progress / warmup
    if progress >= end:
        return floor
    t = (progress - warmup) / (end - warmup)
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * t))


def stage_one_end(cfg) -> float:
    """Budget progress where stage two starts (1.0: no stage two)."""
    return 1.0 if cfg.stage_two_fraction is None else 1.0 - cfg.stage_two_fraction


def recipe_lr(progress: float, cfg, stage: int = 1) -> float | None:
    """The learning rate the recipe sets at ``progress`` in ``stage``; None: the scheduler's
    (stage one with a scheduler other than cosine_time)."""
    if stage == 2:
        return cfg.stage_two_lr
    if cfg.scheduler != "cosine_time":
        return None
    end = stage_one_end(cfg)
    floor = cfg.min_lr if cfg.stage_two_fraction is None else cfg.stage_two_lr
    return warmup_cosine(progress, cfg.lr, cfg.min_lr, floor, cfg.warmup_fraction, end)


def _restart_selection(trainer: pl.Trainer) -> None:
    """Early stopping and the best checkpoint forget stage one: its validation loss had
    other loss weights, so it is not comparable."""
    for callback in trainer.callbacks:
        if isinstance(callback, EarlyStopping):
            callback.wait_count = 0
            inf = torch.tensor(torch.inf)
            callback.best_score = inf if callback.monitor_op == torch.lt else -inf
        elif isinstance(callback, ModelCheckpoint):
            inf = torch.tensor(torch.inf if callback.mode == "min" else -torch.inf)
            callback.best_k_models, callback.kth_value = {}, inf
            callback.best_model_path = callback.kth_best_model_path = ""
            callback.best_model_score = callback.current_score = None


class Recipe(pl.Callback):
    """Sets the learning rate before every optimizer step and switches to stage two once
    the budget's progress reaches ``1 - stage_two_fraction``."""

    def __init__(self, cfg):
        self.cfg = cfg

    def progress(self, trainer: pl.Trainer, pl_module) -> float:
        return budget_progress(
            pl_module.train_seconds,
            self.cfg.max_time_minutes,
            trainer.global_step,
            float(trainer.estimated_stepping_batches),
        )

    def on_train_start(self, trainer, pl_module):
        self._apply(trainer, pl_module)  # the epoch's first logged lr is the schedule's

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._apply(trainer, pl_module)

    def _apply(self, trainer, pl_module) -> None:
        progress = rank_zero_decision(trainer, self.progress(trainer, pl_module))
        if pl_module.stage == 1 and progress >= stage_one_end(self.cfg) - _TOLERANCE:
            pl_module.start_stage_two()
            _restart_selection(trainer)
            weights = pl_module.loss_weights().items()
            LOG.info(
                "stage two from epoch %d, step %d (%.0f%% of the budget): %s; lr %g; EMA "
                "restarted, early stopping and best checkpoint reset",
                trainer.current_epoch + 1, trainer.global_step, 100 * progress,
                ", ".join(f"{k} {v:g}" for k, v in weights) or "same loss",
                self.cfg.stage_two_lr,
            )  # fmt: skip
        lr = recipe_lr(progress, self.cfg, pl_module.stage)
        if lr is not None:
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] = lr
