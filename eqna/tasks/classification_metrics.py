"""Metrics of classifiers: accuracy, confusion matrix, ROC curves and their area, average
precision.

Plain NumPy on the whole evaluation set (areas under curves are not sums over batches). The
definitions are scikit-learn's (``roc_auc_score``, ``average_precision_score``,
``confusion_matrix``; checked against it in the tests): ties in the scores share one threshold,
ROC-AUC is the trapezoidal area, average precision the step sum ``sum_n (R_n - R_n-1) P_n``.
A label that is all positive or all negative in the data has no ROC-AUC or average precision
(NaN), and the means skip it.
"""

import numpy as np

__all__ = [
    "average_precision",
    "classification_metrics",
    "confusion_matrix",
    "format_classification",
    "roc_auc",
    "roc_curve",
]


def _ranked(truth: np.ndarray, score: np.ndarray):
    """Cumulative true and false positives at each distinct threshold, highest score first."""
    order = np.argsort(-score, kind="mergesort")
    score, truth = score[order], truth[order].astype(np.float64)
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), truth.size - 1]
    tps = np.cumsum(truth)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return tps, fps


def roc_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates [m + 1] from the highest threshold down, starting at
    (0, 0); NaN rates when one class is absent."""
    truth, score = np.asarray(truth).astype(bool), np.asarray(score, dtype=np.float64)
    tps, fps = _ranked(truth, score)
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    positives, negatives = tps[-1], fps[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return fps / negatives, tps / positives


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids); NaN when only one class is present."""
    truth = np.asarray(truth).astype(bool)
    if truth.all() or not truth.any():
        return float("nan")
    fpr, tpr = roc_curve(truth, score)
    return float(np.trapezoid(tpr, fpr))


def average_precision(truth: np.ndarray, score: np.ndarray) -> float:
    """sum_n (R_n - R_n-1) P_n over the distinct thresholds; NaN without positives."""
    truth = np.asarray(truth).astype(bool)
    if not truth.any():
        return float("nan")
    tps, fps = _ranked(truth, np.asarray(score, dtype=np.float64))
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, np.int64)), 1)
    return matrix


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def classification_metrics(
    labels: np.ndarray, probabilities: np.ndarray, classes: list[str], multilabel: bool
) -> dict:
    """The metrics of one evaluation set.

    Args:
        labels: multi-class: [m] class indices; multilabel: [m, L] 0/1.
        probabilities: [m, C] softmax (multi-class) or [m, L] sigmoid outputs (multilabel).
        classes: the class (label) names, in output order.
        multilabel: one independent yes/no per label (thresholded at 0.5) instead of one class.

    Returns:
        ``accuracy`` (multilabel: over all structure-label pairs), ``exact_match`` (multilabel:
        all labels of a structure right), ``mean_roc_auc`` and ``mean_average_precision``
        (macro means: one-vs-rest per class for multi-class), ``roc_auc`` and
        ``average_precision`` per class name, ``confusion_matrix`` (multi-class: [C, C] lists;
        multilabel: per label [[tn, fp], [fn, tp]]), ``num_structures``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    num_classes = probabilities.shape[1]
    if multilabel:
        truth = np.asarray(labels, dtype=np.float64).reshape(-1, num_classes).astype(bool)
        predicted = probabilities >= 0.5
        confusion = {
            name: confusion_matrix(truth[:, c], predicted[:, c], 2).tolist()
            for c, name in enumerate(classes)
        }
        extra = {"exact_match": float((predicted == truth).all(1).mean())}
        accuracy = float((predicted == truth).mean())
    else:
        index = np.asarray(labels, dtype=np.int64).reshape(-1)
        predicted = probabilities.argmax(1)
        truth = np.eye(num_classes, dtype=bool)[index]
        confusion = confusion_matrix(index, predicted, num_classes).tolist()
        extra, accuracy = {}, float((predicted == index).mean())
    auc = {name: roc_auc(truth[:, c], probabilities[:, c]) for c, name in enumerate(classes)}
    ap = {
        name: average_precision(truth[:, c], probabilities[:, c]) for c, name in enumerate(classes)
    }
    return {
        "num_structures": int(truth.shape[0]),
        "accuracy": accuracy,
        **extra,
        "mean_roc_auc": _nanmean(list(auc.values())),
        "mean_average_precision": _nanmean(list(ap.values())),
        "roc_auc": auc,
        "average_precision": ap,
        "confusion_matrix": confusion,
    }


def format_classification(metrics: dict, classes: list[str], title: str = "") -> str:
    """A markdown summary: the headline numbers, then one row per class."""
    lines = [title] if title else []
    lines.append(f"accuracy {metrics['accuracy']:.4f}")
    if "exact_match" in metrics:
        lines[-1] += f"  exact match {metrics['exact_match']:.4f}"
    lines[-1] += (
        f"  mean ROC-AUC {metrics['mean_roc_auc']:.4f}"
        f"  mean average precision {metrics['mean_average_precision']:.4f}"
    )
    lines += ["", "| class | ROC-AUC | average precision |", "|---|---|---|"]
    for name in classes:
        auc, ap = metrics["roc_auc"][name], metrics["average_precision"][name]
        lines.append(f"| {name} | {auc:.4f} | {ap:.4f} |")
    confusion = metrics["confusion_matrix"]
    if isinstance(confusion, list):  # multi-class: rows true, columns predicted
        lines += ["", "confusion matrix (rows: true class, columns: predicted)"]
        width = max(len(n) for n in classes)
        lines.append(" " * (width + 2) + " ".join(f"{n[:6]:>6}" for n in classes))
        for name, row in zip(classes, confusion):
            lines.append(f"{name:>{width}}  " + " ".join(f"{v:>6d}" for v in row))
    return "\n".join(lines)
