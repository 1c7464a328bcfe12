"""Predictions of a model over a data set, with error metrics and the arrays for parity plots.

One pass over the data gives everything ``eqna-evaluate`` reports: the overall metrics, the
metrics of each group of structures (e.g. per ``config_type``), the parity arrays and, when
asked, the per-structure predictions, so a large test set is run through the model once.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from eqna.data import keys
from eqna.data.prepare import make_loader
from eqna.evaluate.predictions import StructurePrediction, split_predictions
from eqna.nn.neural_atoms import cluster_statistics, fourier_layers
from eqna.tasks.classification_metrics import classification_metrics
from eqna.tasks.metrics import ErrorAccumulator, wants_stress
from eqna.tasks.tasks import PotentialTask, PropertyTask

LABEL_FLAGS = (keys.HAS_ENERGY, keys.HAS_FORCES, keys.HAS_STRESS, keys.HAS_PROPERTY)
NO_CONFIG_TYPE = "(none)"  # the group of structures without atoms.info["config_type"]


@dataclass
class Evaluation:
    """What one pass of a model over a data set measured.

    Attributes:
        metrics: overall MAE/RMSE per labelled quantity (meV units, see ``eqna.tasks.metrics``).
        parity: ``{quantity: (reference [m], predicted [m])}`` in eV units.
        by_group: ``{group: metrics + "num_structures"}``, one entry per group name given.
        predictions: one :class:`StructurePrediction` per structure, in data set order (only
            with ``keep_predictions``).
        scores: a classifier's labelled structures: (labels [m] class indices or [m, L] 0/1,
            probabilities [m, C]), for ROC curves; None for other models.
        clusters: K per structure [s] (summed over the Fourier neural-atom layers), in data
            set order; None without such layers.
    """

    metrics: dict[str, float]
    parity: dict[str, tuple[np.ndarray, np.ndarray]]
    by_group: dict[str, dict[str, float]] = field(default_factory=dict)
    predictions: list[StructurePrediction] = field(default_factory=list)
    scores: tuple[np.ndarray, np.ndarray] | None = None
    clusters: np.ndarray | None = None


def _reference_energy(model, batch) -> torch.Tensor:
    """[g] sum of the model's isolated-atom energies E0 per structure (zeros if it has none).

    Parity plots show E - sum E0: total energies of different molecules differ by hundreds of
    eV and would hide every error on one diagonal.
    """
    num_graphs = batch[keys.NUM_ATOMS].shape[0]
    e0 = model.network.energy_shift.atomic_energies[batch[keys.NODE_TYPES]].to(
        batch[keys.ENERGY].dtype
    )
    return batch[keys.ENERGY].new_zeros(num_graphs).index_add_(0, batch[keys.BATCH], e0)


def _masks(model, batch, dtype) -> dict:
    """quantity -> (label mask, key, offset, divisor) of the parity arrays."""
    if not model.is_potential:
        if keys.HAS_PROPERTY not in batch:  # unlabelled property data: nothing to compare
            return {}
        return {"property": (batch[keys.HAS_PROPERTY].bool(), keys.PROPERTY, 0.0, 1.0)}
    n = batch[keys.NUM_ATOMS].to(dtype)
    return {
        "energy_per_atom": (
            batch[keys.HAS_ENERGY].bool(),
            keys.ENERGY,
            _reference_energy(model, batch),
            n,
        ),
        "forces": (batch[keys.HAS_FORCES].bool()[batch[keys.BATCH]], keys.FORCES, 0.0, 1.0),
        "stress": (batch[keys.HAS_STRESS].bool(), keys.STRESS, 0.0, 1.0),
    }


def _predict(model, batch, periodic_stress: bool) -> dict[str, torch.Tensor]:
    """The model's predictions for ``batch``, detached.

    Stress costs a strain derivative: it is computed where stress is labelled, as in training
    and validation, and with ``periodic_stress`` also for unlabelled periodic cells, whose
    predicted stress is written out.
    """
    if not model.is_potential:
        with torch.no_grad():
            return model(batch)
    stress = wants_stress(batch) or (periodic_stress and bool(batch[keys.PBC].all(1).any()))
    with torch.enable_grad():  # forces are a derivative
        pred = model(batch, compute_stress=stress)
    return {key: value.detach() for key, value in pred.items()}


def _restricted(batch: dict, graph_mask: torch.Tensor) -> dict:
    """``batch`` with the labels of structures outside ``graph_mask`` [g] marked absent, so the
    task's own residuals (and so the metrics) cover only one group."""
    out = dict(batch)
    for flag in LABEL_FLAGS:
        if flag in batch:
            out[flag] = batch[flag].bool() & graph_mask
    return out


class _Scores:
    """Error accumulators overall and per group, fed batch by batch in data set order."""

    def __init__(self, task, groups: Sequence[str] | None):
        self.task, self.groups = task, list(groups or [])
        self.overall = ErrorAccumulator()
        self.by_group = {name: ErrorAccumulator() for name in dict.fromkeys(self.groups)}
        self.seen = 0

    def update(self, pred: dict, batch: dict) -> None:
        num_graphs = batch[keys.NUM_ATOMS].shape[0]
        members = np.asarray(self.groups[self.seen : self.seen + num_graphs])
        self.seen += num_graphs
        if isinstance(self.task, PropertyTask) and keys.HAS_PROPERTY not in batch:
            return  # a property model on data without its target: predictions only
        self.overall.update(self.task.residuals(pred, batch))
        for name, accumulator in self.by_group.items():
            in_group = torch.as_tensor(members == name, device=batch[keys.NUM_ATOMS].device)
            if in_group.any():
                accumulator.update(self.task.residuals(pred, _restricted(batch, in_group)))

    def group_metrics(self) -> dict[str, dict[str, float]]:
        counts = {name: self.groups.count(name) for name in self.by_group}
        return {
            name: {"num_structures": counts[name], **accumulator.compute()}
            for name, accumulator in self.by_group.items()
        }


class _ClassScores:
    """A classifier's labels and probabilities, overall and per group; the metrics (areas under
    curves) come from the whole set at the end."""

    def __init__(self, model, groups: Sequence[str] | None):
        self.classes, self.multilabel = model.classes, model.output == "multilabel"
        self.groups = np.asarray(list(groups)) if groups else None
        self.labels, self.probabilities, self.members = [], [], []
        self.seen = 0

    def update(self, pred: dict, batch: dict) -> None:
        num_graphs = batch[keys.NUM_ATOMS].shape[0]
        start, self.seen = self.seen, self.seen + num_graphs
        if keys.HAS_PROPERTY not in batch:
            return  # unlabelled data: predictions only
        mask = batch[keys.HAS_PROPERTY].bool()
        self.labels.append(batch[keys.PROPERTY][mask].cpu().double().numpy())
        self.probabilities.append(pred[keys.PROBABILITIES][mask].cpu().double().numpy())
        self.members.append(np.arange(start, self.seen)[mask.cpu().numpy()])

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if not self.labels or not sum(len(x) for x in self.labels):
            return None
        labels = np.concatenate(self.labels)
        labels = labels if self.multilabel else labels[:, 0].round().astype(np.int64)
        return labels, np.concatenate(self.probabilities), np.concatenate(self.members)

    def _metrics(self, labels, probabilities) -> dict:
        return classification_metrics(labels, probabilities, self.classes, self.multilabel)

    def metrics(self) -> tuple[dict, dict]:
        """(overall metrics, {group: metrics}) of the labelled structures."""
        arrays = self.arrays()
        if arrays is None:
            return {}, {}
        labels, probabilities, members = arrays
        by_group = {}
        if self.groups is not None:
            for name in dict.fromkeys(self.groups.tolist()):
                chosen = self.groups[members] == name
                if chosen.any():
                    by_group[name] = self._metrics(labels[chosen], probabilities[chosen])
        return self._metrics(labels, probabilities), by_group


def run_evaluation(
    model,
    dataset,
    batch_size: int = 32,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    groups: Sequence[str] | None = None,
    keep_predictions: bool = False,
) -> Evaluation:
    """Run ``model`` over ``dataset`` in batches, once; see :class:`Evaluation`.

    Args:
        groups: a group name per structure of ``dataset`` (e.g. its ``config_type``); each
            group gets its own metrics.
        keep_predictions: also return the per-structure predictions (energy, per-atom
            energies, forces, stress of periodic cells, or the property).
    """
    dtype = dtype or next(model.parameters()).dtype
    model = model.to(device).eval()
    if model.is_classifier:
        scores = _ClassScores(model, groups)
    else:
        scores = _Scores(PotentialTask() if model.is_potential else PropertyTask(), groups)
    pairs = {name: ([], []) for name in ("energy_per_atom", "forces", "stress", "property")}
    predictions, clusters, layers = [], [], fourier_layers(model)
    for batch in make_loader(dataset, batch_size, dtype, shuffle=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        pred = _predict(model, batch, periodic_stress=keep_predictions)
        if layers:
            clusters.append(sum(layer.last_counts for layer in layers).double().cpu().numpy())
        scores.update(pred, batch)
        for name, (mask, key, offset, divisor) in _masks(model, batch, dtype).items():
            if key not in pred:
                continue
            ref = (batch[key] - offset) / divisor
            prd = (pred[key] - offset) / divisor
            pairs[name][0].append(ref[mask].reshape(-1).cpu().double().numpy())
            pairs[name][1].append(prd[mask].reshape(-1).cpu().double().numpy())
        if keep_predictions:
            predictions.extend(split_predictions(pred, batch))
    parity = {name: (np.concatenate(r), np.concatenate(p)) for name, (r, p) in pairs.items() if r}
    parity = {name: arrays for name, arrays in parity.items() if arrays[0].size}
    counts = np.concatenate(clusters) if clusters else None
    if model.is_classifier:
        overall, by_group = scores.metrics()
        arrays = scores.arrays()
        pair = None if arrays is None else arrays[:2]
    else:
        overall, by_group, pair = scores.overall.compute(), scores.group_metrics(), None
    if counts is not None and len(counts):
        overall.update(cluster_statistics([counts]))
    return Evaluation(overall, parity, by_group, predictions, pair, counts)


def evaluate_dataset(
    model,
    dataset,
    batch_size: int = 32,
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
):
    """Run ``model`` over ``dataset``; returns (metrics in meV units, parity arrays in eV units).

    Parity arrays: ``{quantity: (reference [m], predicted [m])}`` for labelled quantities, with
    energy per atom relative to the model's E0s, force components and stress components, or
    the property values of a property model.
    """
    evaluation = run_evaluation(model, dataset, batch_size, dtype, device)
    return evaluation.metrics, evaluation.parity


def has_labels(model, dataset) -> bool:
    """Whether any structure of ``dataset`` carries a label of a quantity ``model`` predicts."""
    flags = LABEL_FLAGS[:3] if model.is_potential else (keys.HAS_PROPERTY,)
    return any(
        bool(graph[flag].any()) for graph in dataset.graphs for flag in flags if flag in graph
    )


def config_types(structures: list) -> list[str] | None:
    """``atoms.info["config_type"]`` of each structure, or None if there are not two kinds."""
    types = [str(atoms.info.get("config_type", NO_CONFIG_TYPE)) for atoms in structures]
    return types if len(set(types)) > 1 else None
