"""What a model is trained to predict: potentials (energy, forces, stress), properties or
classes.

A task knows how to run its model on a batch, its loss and the running metrics of validation
(:meth:`new_accumulator`, :meth:`accumulate`), so one LightningModule serves all of them.
"""

from dataclasses import dataclass

import torch
from torch import nn

from eqna.data import keys
from eqna.tasks.loss import weighted_loss
from eqna.tasks.metrics import ErrorAccumulator, errors, wants_stress

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

    def new_accumulator(self) -> ErrorAccumulator:
        return ErrorAccumulator()

    def accumulate(self, accumulator: ErrorAccumulator, pred, batch) -> None:
        accumulator.update(self.residuals(pred, batch))


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

    new_accumulator = PotentialTask.new_accumulator
    accumulate = PotentialTask.accumulate


class ClassAccumulator:
    """Validation counts of a classifier: right predictions (per structure-label pair for
    multilabel) and whole structures with every label right; sums, so they add over processes."""

    def __init__(self, multilabel: bool):
        self.multilabel = multilabel
        self.correct = self.total = self.exact = self.structures = 0.0

    def update(self, pred, batch) -> None:
        mask = batch[keys.HAS_PROPERTY].bool()
        labels, probabilities = batch[keys.PROPERTY][mask], pred[keys.PROBABILITIES][mask]
        if self.multilabel:
            right = (probabilities >= 0.5) == labels.bool()
            self.exact += float(right.all(-1).sum())
        else:
            right = probabilities.argmax(-1) == labels[:, 0].long()
            self.exact += float(right.sum())
        self.correct += float(right.sum())
        self.total += right.numel()
        self.structures += int(mask.sum())

    def sums(self) -> list[float]:
        return [self.correct, self.total, self.exact, self.structures]

    def load_sums(self, values: list[float]) -> None:
        self.correct, self.total, self.exact, self.structures = values

    def compute(self) -> dict[str, float]:
        """``accuracy`` (multilabel: over structure-label pairs; also ``exact_match``)."""
        if not self.total:
            return {}
        out = {"accuracy": self.correct / self.total}
        if self.multilabel:
            out["exact_match"] = self.exact / max(self.structures, 1)
        return out


@dataclass
class ClassificationTask:
    """Class labels: cross-entropy over the classes (``classification``; the label is the
    class index) or one binary cross-entropy per label (``multilabel``; 0/1 per label), on the
    logits, over labelled structures.

    ``class_weights`` [C]: multi-class, the weight of each class in the cross-entropy (a
    weighted mean, torch's ``weight``); multilabel, the weight of each label's positives
    (torch's ``pos_weight``).
    """

    multilabel: bool = False
    class_weights: tuple[float, ...] | None = None

    def predict(self, model, batch, training: bool = False) -> dict[str, torch.Tensor]:
        return model(batch)

    def loss(self, pred, batch):
        mask = batch[keys.HAS_PROPERTY].bool()
        logits, labels = pred[keys.LOGITS][mask], batch[keys.PROPERTY][mask]
        if logits.shape[0] == 0:  # nothing labelled: zero, still attached to the graph
            value = pred[keys.LOGITS].sum() * 0.0
            return value, {"class": value.detach()}
        weights = None
        if self.class_weights is not None:
            weights = logits.new_tensor(self.class_weights)
        if self.multilabel:
            value = nn.functional.binary_cross_entropy_with_logits(
                logits, labels, pos_weight=weights
            )
        else:
            value = nn.functional.cross_entropy(logits, labels[:, 0].long(), weight=weights)
        return value, {"class": value.detach()}

    def new_accumulator(self) -> ClassAccumulator:
        return ClassAccumulator(self.multilabel)

    def accumulate(self, accumulator: ClassAccumulator, pred, batch) -> None:
        accumulator.update(pred, batch)


def balanced_weights(counts, multilabel: bool, num_structures: int) -> tuple[float, ...]:
    """``training.class_weights: balanced`` from the training labels: multi-class, the inverse
    class frequency n / (C n_c) (scikit-learn's 'balanced'); multilabel, negatives / positives
    per label. A class or label without training examples weighs 1."""
    counts = [float(c) for c in counts]
    if multilabel:
        return tuple((num_structures - c) / c if c > 0 else 1.0 for c in counts)
    return tuple(num_structures / (len(counts) * c) if c > 0 else 1.0 for c in counts)


def make_task(model, training_cfg, class_counts=None):
    """The task of an :class:`eqna.models.AtomisticModel` with the loss settings of the
    ``training`` config section; ``class_counts`` (training structures per class, or
    positives per label, and the number of structures) serve ``class_weights: balanced``."""
    cfg = training_cfg
    if getattr(model, "is_classifier", False):
        multilabel = model.output == "multilabel"
        weights = cfg.class_weights
        if weights == "balanced":
            if class_counts is None:
                raise ValueError("training.class_weights: balanced needs the training labels")
            weights = balanced_weights(class_counts[0], multilabel, class_counts[1])
        elif weights is not None and len(weights) != len(model.classes):
            raise ValueError(
                f"training.class_weights has {len(weights)} entries; the model has "
                f"{len(model.classes)} classes ({', '.join(model.classes)})"
            )
        return ClassificationTask(multilabel, None if weights is None else tuple(weights))
    if not model.is_potential:
        return PropertyTask.for_model(model, cfg.property_loss, cfg.huber_delta)
    delta = cfg.loss_huber_delta if cfg.loss == "huber" else None
    return PotentialTask(cfg.energy_weight, cfg.forces_weight, cfg.stress_weight, delta)
