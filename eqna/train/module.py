"""LightningModule: weighted loss, EMA weights for validation and export, metrics per quantity."""

import pytorch_lightning as pl
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from eqna.data import keys
from eqna.nn.neural_atoms import gate_penalty, k_eff_summary
from eqna.nn.physics import ForceStressOutput
from eqna.train.config import TrainingConfig
from eqna.train.loss import weighted_loss
from eqna.train.metrics import ErrorAccumulator, errors, wants_stress


class PotentialModule(pl.LightningModule):
    """Trains a :class:`ForceStressOutput` model; ``self.ema`` holds the averaged weights."""

    def __init__(self, model: ForceStressOutput, cfg: TrainingConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.ema = None
        if cfg.ema_decay is not None:
            self.ema = AveragedModel(
                model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True
            )
        self._val_errors = ErrorAccumulator()
        self._val_loss = []

    @property
    def eval_model(self) -> ForceStressOutput:
        """The weights used for validation, testing and export (EMA if enabled)."""
        return self.ema.module if self.ema is not None else self.model

    def _loss(self, pred, batch):
        cfg = self.cfg
        return weighted_loss(pred, batch, cfg.energy_weight, cfg.forces_weight, cfg.stress_weight)

    def training_step(self, batch, batch_idx):
        pred = self.model(batch, compute_stress=self.cfg.stress_weight > 0 and wants_stress(batch))
        loss, parts = self._loss(pred, batch)
        size = int(batch[keys.NUM_ATOMS].shape[0])
        self.log("train_loss", loss, batch_size=size, prog_bar=True, on_epoch=True, on_step=False)
        penalty = gate_penalty(self.model)
        if penalty is not None and self.cfg.gate_penalty > 0:
            loss = loss + self.cfg.gate_penalty * penalty
            self.log("gate_l1", penalty, batch_size=size, on_epoch=True, on_step=False)
        return loss

    def on_train_epoch_end(self):
        for name, value in k_eff_summary(self.model).items():
            self.log(name, value, prog_bar=name == "k_eff")

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def validation_step(self, batch, batch_idx):
        with torch.enable_grad():  # forces are a derivative, also in validation
            pred = self.eval_model(batch, compute_stress=wants_stress(batch))
        loss, _ = self._loss(pred, batch)
        self._val_loss.append((float(loss), int(batch[keys.NUM_ATOMS].shape[0])))
        self._val_errors.update(errors(pred, batch))

    def on_validation_epoch_end(self):
        total = sum(n for _, n in self._val_loss)
        loss = sum(v * n for v, n in self._val_loss) / max(total, 1)
        self.log("val_loss", loss, prog_bar=True)
        for name, value in self._val_errors.compute().items():
            self.log(f"val_{name}", value, prog_bar=name == "forces_mae")
        self._val_errors, self._val_loss = ErrorAccumulator(), []

    def configure_optimizers(self):
        cfg = self.cfg
        if cfg.optimizer == "adamw":
            opt = torch.optim.AdamW(
                self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
            )
        else:
            opt = torch.optim.Adam(
                self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=True
            )
        if cfg.scheduler == "none":
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
