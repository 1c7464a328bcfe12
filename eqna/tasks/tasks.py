"""What a model is trained to predict: potentials (energy, forces, stress) or properties.

A task knows how to run its model on a batch, its loss and its residuals for the metrics, so
one LightningModule and one evaluation loop serve both.
"""

from dataclasses import dataclass

import torch
from torch import nn

from eqna.data import keys
from eqna.tasks.loss import weighted_loss
from eqna.tasks.metrics import errors, wants_stress

PROPERTY_LOSSES = ("mae", "mse", "huber")


@dataclass
class PotentialTask:
    """Energies, forces and (where labelled) stress; the loss of :func:`weighted_loss`
    (squared error, or Huber with ``huber_delta``)."""

    energy_weight: float = 1.0
    forces_weight: float = 10.0
    stress_weight: float = 0.0
    huber_delta: float | None = None

    def predict(self, model, batch, training: bool = False) -> dict[str, torch.Tensor]:
        with torch.enable_grad():  # forces are a derivative, also in validation
            stress = wants_stress(batch) and (not training or self.stress_weight > 0)
            return model(batch, compute_stress=stress)

    def loss(self, pred, batch):
        return weighted_loss(
            pred,
            batch,
            self.energy_weight,
            self.forces_weight,
            self.stress_weight,
            self.huber_delta,
        )

    def residuals(self, pred, batch) -> dict[str, torch.Tensor]:
        return errors(pred, batch)


@dataclass
class PropertyTask:
    """Per-structure targets [g, t]; the loss is taken on residuals in units of the target std.

    ``huber_delta`` is in those units too. For ``sum`` pooling (extensive targets, std per atom)
    the residual is also divided by the number of atoms, so every structure weighs alike.
    """

    target_std: tuple[float, ...] = (1.0,)
    per_atom: bool = False
    loss_name: str = "mae"
    huber_delta: float = 0.1

    @classmethod
    def for_model(cls, model, loss_name: str = "mae", huber_delta: float = 0.1):
        """The task of an :class:`eqna.models.AtomisticModel` with a property head."""
        head = model.network.head
        std = tuple(float(s) for s in head.target_std)
        return cls(std, head.pooling == "sum", loss_name, huber_delta)

    def predict(self, model, batch, training: bool = False) -> dict[str, torch.Tensor]:
        return model(batch)

    def loss(self, pred, batch):
        residual = pred[keys.PROPERTY] - batch[keys.PROPERTY]  # [g, t]
        residual = residual / residual.new_tensor(self.target_std)
        if self.per_atom:
            residual = residual / batch[keys.NUM_ATOMS].to(residual.dtype).unsqueeze(-1)
        mask = batch[keys.HAS_PROPERTY].bool()
        residual = residual[mask]
        if self.loss_name == "mae":
            value = residual.abs().mean()
        elif self.loss_name == "mse":
            value = residual.pow(2).mean()
        elif self.loss_name == "huber":
            zero = torch.zeros_like(residual)
            value = nn.functional.huber_loss(residual, zero, delta=self.huber_delta)
        else:
            raise ValueError(f"training.property_loss: unknown {self.loss_name!r}")
        return value, {"property": value.detach()}

    def residuals(self, pred, batch) -> dict[str, torch.Tensor]:
        mask = batch[keys.HAS_PROPERTY].bool()
        return {"property": (pred[keys.PROPERTY] - batch[keys.PROPERTY])[mask].reshape(-1)}


def make_task(model, training_cfg) -> "PotentialTask | PropertyTask":
    """The task of an :class:`eqna.models.AtomisticModel` with the loss settings of the
    ``training`` config section."""
    if not model.is_potential:
        return PropertyTask.for_model(model, training_cfg.property_loss, training_cfg.huber_delta)
    cfg = training_cfg
    delta = cfg.loss_huber_delta if cfg.loss == "huber" else None
    return PotentialTask(cfg.energy_weight, cfg.forces_weight, cfg.stress_weight, delta)
