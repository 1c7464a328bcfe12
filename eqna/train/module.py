"""LightningModule: the task's loss, EMA weights for validation and export, metrics per quantity."""

import random
import time
from functools import partial

import numpy as np
import pytorch_lightning as pl
import torch
from torch.optim.swa_utils import AveragedModel

from eqna.data import keys
from eqna.nn.neural_atoms import fourier_layers, gate_penalty, k_eff_summary
from eqna.tasks.tasks import make_task
from eqna.train.distributed import all_reduce_max, all_reduce_sums

STAGE_WEIGHTS = ("energy_weight", "forces_weight", "stress_weight")


def _numpy_state() -> dict:
    """NumPy's global RNG state as tensors and numbers (checkpoints load with weights_only)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}  # fmt: skip


def _set_numpy_state(state: dict) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["pos"], state["has_gauss"], state["cached"]))


class TrainingDiverged(RuntimeError):
    """A non-finite loss or gradient: training stops before any weight becomes non-finite."""


class TrainingModule(pl.LightningModule):
    """Trains any :class:`eqna.models.AtomisticModel` (potential or property model);
    ``self.ema`` holds the averaged weights. What is predicted and the loss come from
    :func:`eqna.tasks.make_task`; ``cfg`` is the ``training`` config section."""

    def __init__(
        self, model: torch.nn.Module, cfg, meta: dict | None = None, generator=None,
        class_counts=None,
    ):  # fmt: skip
        """``meta`` (family, hparams, config) goes into every checkpoint so that any checkpoint
        exports to a model.pt; ``generator`` is the training loader's shuffling RNG;
        ``class_counts`` a classifier's training labels per class (``class_weights: balanced``)."""
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.meta, self.generator = meta or {}, generator
        self.seconds_before = 0.0  # training wall time of earlier sessions of a resumed run
        self._fit_start = time.perf_counter()
        self.task = make_task(model, cfg, class_counts)
        self.ema = None
        if cfg.ema_decay is not None:
            self.ema = AveragedModel(
                model, multi_avg_fn=partial(ema_update, cfg.ema_decay), use_buffers=True
            )
            self.ema.requires_grad_(False)  # averaged, never trained (and DDP must not wait)
        self._val_errors = self.task.new_accumulator()
        self._val_loss = []
        self._val_clusters = []  # K per validation structure (Fourier neural atoms)
        self.stage = 1  # 2 after the switch of eqna.train.recipe (training.stage_two_fraction)

    def loss_weights(self) -> dict[str, float]:
        """The task's loss weights now (potentials; {} for property models)."""
        return {k: getattr(self.task, k) for k in STAGE_WEIGHTS if hasattr(self.task, k)}

    def start_stage_two(self) -> None:
        """Stage two: its loss weights, and the EMA restarted from the current weights (its
        model is the average over stage two only). The learning rate is the recipe's."""
        self._stage_two_weights()
        if self.ema is not None:
            self.ema.n_averaged.zero_()  # the next update copies instead of averaging
            self.ema.update_parameters(self.model)

    def _stage_two_weights(self) -> None:
        self.stage = 2
        for name in self.loss_weights():
            value = getattr(self.cfg, f"stage_two_{name}")
            if value is not None:
                setattr(self.task, name, value)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights used for validation, testing and export (EMA if enabled)."""
        return self.ema.module if self.ema is not None else self.model

    def training_step(self, batch, batch_idx):
        pred = self.task.predict(self.model, batch, training=True)
        loss, parts = self.task.loss(pred, batch)
        if not bool(torch.isfinite(loss)):
            raise TrainingDiverged(
                f"training diverged at epoch {self.current_epoch}, step {self.global_step}: the "
                f"loss is {float(loss.detach())}; nothing was exported (lower training.lr, now "
                f"{self.cfg.lr:g}, or check the data)"
            )
        size = int(batch[keys.NUM_ATOMS].shape[0])
        self.log("train_loss", loss, batch_size=size, prog_bar=True, on_epoch=True, on_step=False,
                 sync_dist=True)  # fmt: skip
        penalty = gate_penalty(self.model)
        if penalty is not None and self.cfg.gate_penalty > 0:
            loss = loss + self.cfg.gate_penalty * penalty
            self.log(
                "gate_l1", penalty, batch_size=size, on_epoch=True, on_step=False, sync_dist=True
            )
        return loss

    def on_before_optimizer_step(self, optimizer):
        grads = [(n, p.grad) for n, p in self.model.named_parameters() if p.grad is not None]
        if not grads or bool(torch.stack([g.isfinite().all() for _, g in grads]).all()):
            return  # one device sync per step; names are looked up only on failure
        for name, grad in grads:
            if not bool(grad.isfinite().all()):
                raise TrainingDiverged(
                    f"training diverged at epoch {self.current_epoch}, step {self.global_step}: "
                    f"non-finite gradient of {name}; nothing was exported (lower training.lr, "
                    f"now {self.cfg.lr:g}, or check the data)"
                )

    def on_fit_start(self):
        self._fit_start = time.perf_counter()

    @property
    def train_seconds(self) -> float:
        """Training wall time of the whole run, resumed sessions included (rank 0's clock
        where several processes train)."""
        if self._fit_start is None:  # ddp_spawn: fit ran in the spawned processes
            return self.seconds_before
        return self.seconds_before + time.perf_counter() - self._fit_start

    def adopt_spawned_end(self, checkpoint: dict) -> int:
        """After ``ddp_spawn``: the clock and stage rank 0 ended with, from its last
        checkpoint (the weights come back through Lightning); returns the epochs trained."""
        self.seconds_before, self._fit_start = float(checkpoint["eqna_train_seconds"]), None
        self.stage = int(checkpoint.get("eqna_stage", 1))
        return int(checkpoint["loops"]["fit_loop"]["epoch_progress"]["total"]["processed"])

    def on_save_checkpoint(self, checkpoint):
        checkpoint["eqna"] = self.meta
        checkpoint["eqna_train_seconds"] = self.train_seconds
        checkpoint["eqna_stage"] = self.stage
        checkpoint["eqna_rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(),
            "python": random.getstate(),
            "loader": None if self.generator is None else self.generator.get_state(),
        }

    def on_load_checkpoint(self, checkpoint):
        self.seconds_before = float(checkpoint.get("eqna_train_seconds", 0.0))
        if checkpoint.get("eqna_stage", 1) == 2:
            self._stage_two_weights()  # the EMA and the lr come with the checkpoint
        rng = checkpoint.get("eqna_rng")
        if rng is None:
            return
        torch.set_rng_state(rng["torch"])
        _set_numpy_state(rng["numpy"])
        random.setstate(rng["python"])
        if self.generator is not None and rng["loader"] is not None:
            self.generator.set_state(rng["loader"])

    def on_train_epoch_end(self):
        for name, value in k_eff_summary(self.model).items():
            self.log(name, value, prog_bar=name == "k_eff", sync_dist=True)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def validation_step(self, batch, batch_idx):
        pred = self.task.predict(self.eval_model, batch)
        loss, _ = self.task.loss(pred, batch)
        self._val_loss.append((float(loss), int(batch[keys.NUM_ATOMS].shape[0])))
        self.task.accumulate(self._val_errors, pred, batch)
        layers = fourier_layers(self.eval_model)
        if layers:  # K per structure, summed over the Fourier layers
            self._val_clusters.append(sum(layer.last_counts for layer in layers).double().cpu())

    def on_validation_epoch_end(self):
        # every process validated its shard: sums over all of them, each structure once
        local = [sum(v * n for v, n in self._val_loss), sum(n for _, n in self._val_loss)]
        summed = all_reduce_sums(self.trainer, local + self._val_errors.sums())
        weighted, total = summed[:2]
        self._val_errors.load_sums(summed[2:])
        loss = weighted / max(total, 1)
        # the same on every process already: sync_dist averages equal values (and is quiet)
        self.log("val_loss", loss, prog_bar=True, sync_dist=True)
        self.log("stage", float(self.stage), sync_dist=True)  # val_loss's definition changes
        for name, value in self._val_errors.compute().items():
            self.log(f"val_{name}", value, prog_bar=name == "forces_mae", sync_dist=True)
        for name, value in self._cluster_statistics().items():
            self.log(f"val_{name}", value, sync_dist=True)
        self._val_clusters = []
        self._val_errors, self._val_loss = self.task.new_accumulator(), []

    def _cluster_statistics(self) -> dict[str, float]:
        """Mean, std, min and max of K per validation structure over every process."""
        if not fourier_layers(self.eval_model):
            return {}
        counts = torch.cat(self._val_clusters) if self._val_clusters else torch.zeros(0)
        n, total, square = all_reduce_sums(
            self.trainer, [counts.numel(), float(counts.sum()), float(counts.pow(2).sum())]
        )
        if not n:
            return {}
        inf = float("inf")
        high, low = all_reduce_max(
            self.trainer,
            [float(counts.max()) if counts.numel() else -inf,
             -float(counts.min()) if counts.numel() else -inf],
        )  # fmt: skip
        mean = total / n
        std = max(square / n - mean**2, 0.0) ** 0.5
        return {"clusters_mean": mean, "clusters_std": std, "clusters_min": -low,
                "clusters_max": high}  # fmt: skip

    def lr_scheduler_step(self, scheduler, metric):
        if self.stage == 2:
            return  # stage two keeps its constant lr: the epoch schedulers pause
        super().lr_scheduler_step(scheduler, metric)

    def configure_optimizers(self):
        cfg = self.cfg
        trainable = [p for p in self.model.parameters() if p.requires_grad]  # freeze honoured
        if cfg.optimizer == "adamw":
            opt = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            opt = torch.optim.Adam(
                trainable, lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=True
            )
        if cfg.scheduler in ("none", "cosine_time"):  # cosine_time: eqna.train.recipe, per step
            return opt
        if cfg.scheduler == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.max_epochs, cfg.min_lr)
            return {"optimizer": opt, "lr_scheduler": sched}
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, factor=cfg.scheduler_factor, patience=cfg.scheduler_patience, min_lr=cfg.min_lr
        )
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"},
        }


@torch.no_grad()
def ema_update(decay: float, averaged: list, current: list, _num_averaged) -> None:
    """One exponential-moving-average step of ``averaged`` towards ``current`` (torch's
    ``get_ema_multi_avg_fn`` in a named function, so the module pickles for ``ddp_spawn``)."""
    for mean, value in zip(averaged, current):
        if mean.is_floating_point():
            mean.lerp_(value, 1.0 - decay)
        else:
            mean.copy_(mean * decay + value * (1.0 - decay))
