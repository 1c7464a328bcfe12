"""Classification metrics against scikit-learn on fixed examples, ties included."""

import numpy as np
import pytest
import torch

from eqna.data import keys
from eqna.tasks.classification_metrics import (
    average_precision,
    classification_metrics,
    confusion_matrix,
    roc_auc,
    roc_curve,
)
from eqna.tasks.tasks import ClassAccumulator, ClassificationTask, balanced_weights

sklearn_metrics = pytest.importorskip("sklearn.metrics")

RNG = np.random.default_rng(0)
TRUTH = RNG.integers(0, 2, 60).astype(bool)
# rounded scores: many ties, the case where the threshold handling matters
SCORE = np.round(np.clip(0.3 * TRUTH + RNG.normal(0.4, 0.25, 60), 0, 1), 1)


def test_roc_auc_and_average_precision_equal_scikit_learn():
    assert roc_auc(TRUTH, SCORE) == pytest.approx(sklearn_metrics.roc_auc_score(TRUTH, SCORE))
    expected = sklearn_metrics.average_precision_score(TRUTH, SCORE)
    assert average_precision(TRUTH, SCORE) == pytest.approx(expected)
    fpr, tpr = roc_curve(TRUTH, SCORE)
    sk_fpr, sk_tpr, _ = sklearn_metrics.roc_curve(TRUTH, SCORE, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)


def test_one_class_present_has_no_auc():
    assert np.isnan(roc_auc(np.ones(5, bool), np.linspace(0, 1, 5)))
    assert np.isnan(average_precision(np.zeros(5, bool), np.linspace(0, 1, 5)))


def test_multiclass_metrics_equal_scikit_learn():
    labels = RNG.integers(0, 3, 50)
    logits = RNG.normal(size=(50, 3)) + 1.5 * np.eye(3)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    metrics = classification_metrics(labels, probabilities, ["a", "b", "c"], multilabel=False)
    predicted = probabilities.argmax(1)
    assert metrics["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, predicted))
    expected = sklearn_metrics.confusion_matrix(labels, predicted, labels=[0, 1, 2])
    np.testing.assert_array_equal(metrics["confusion_matrix"], expected)
    np.testing.assert_array_equal(confusion_matrix(labels, predicted, 3), expected)
    auc = sklearn_metrics.roc_auc_score(labels, probabilities, multi_class="ovr", average=None)
    np.testing.assert_allclose(list(metrics["roc_auc"].values()), auc)
    assert metrics["mean_roc_auc"] == pytest.approx(
        sklearn_metrics.roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    )
    onehot = np.eye(3)[labels]
    assert metrics["mean_average_precision"] == pytest.approx(
        sklearn_metrics.average_precision_score(onehot, probabilities, average="macro")
    )


def test_multilabel_metrics_equal_scikit_learn():
    labels = RNG.integers(0, 2, (40, 4))
    labels[:, 3] = 1  # one label always positive: no AUC, left out of the mean
    probabilities = np.clip(0.35 * labels + RNG.uniform(0, 0.65, (40, 4)), 0, 1)
    metrics = classification_metrics(labels, probabilities, list("wxyz"), multilabel=True)
    predicted = probabilities >= 0.5
    assert metrics["accuracy"] == pytest.approx((predicted == labels).mean())
    assert metrics["exact_match"] == pytest.approx(
        sklearn_metrics.accuracy_score(labels, predicted)  # subset accuracy
    )
    auc = sklearn_metrics.roc_auc_score(labels[:, :3], probabilities[:, :3], average=None)
    np.testing.assert_allclose([metrics["roc_auc"][k] for k in "wxy"], auc)
    assert np.isnan(metrics["roc_auc"]["z"])
    assert metrics["mean_roc_auc"] == pytest.approx(auc.mean())
    expected = sklearn_metrics.multilabel_confusion_matrix(labels, predicted)
    np.testing.assert_array_equal([metrics["confusion_matrix"][k] for k in "wxyz"], expected)


def test_cross_entropy_and_bce_losses_equal_torch_with_weights_and_masks():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, -1.0, 0.0]])
    batch = {
        keys.PROPERTY: torch.tensor([[0.0], [2.0], [1.0]]),
        keys.HAS_PROPERTY: torch.tensor([True, True, False]),
    }
    task = ClassificationTask(multilabel=False, class_weights=(1.0, 2.0, 0.5))
    loss, _ = task.loss({keys.LOGITS: logits}, batch)
    weight = torch.tensor([1.0, 2.0, 0.5])
    expected = torch.nn.functional.cross_entropy(logits[:2], torch.tensor([0, 2]), weight=weight)
    torch.testing.assert_close(loss, expected)

    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    task = ClassificationTask(multilabel=True, class_weights=(3.0, 1.0, 1.0))
    loss, _ = task.loss({keys.LOGITS: logits}, {**batch, keys.PROPERTY: labels})
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:2], labels[:2], pos_weight=torch.tensor([3.0, 1.0, 1.0])
    )
    torch.testing.assert_close(loss, expected)


def test_validation_counts_and_balanced_weights():
    accumulator = ClassAccumulator(multilabel=False)
    probabilities = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]])
    batch = {
        keys.PROPERTY: torch.tensor([[0.0], [0.0], [1.0]]),
        keys.HAS_PROPERTY: torch.tensor([True, True, True]),
    }
    accumulator.update({keys.PROBABILITIES: probabilities}, batch)
    assert accumulator.compute() == {"accuracy": pytest.approx(1 / 3)}
    assert balanced_weights([30, 10], False, 40) == pytest.approx((40 / 60, 40 / 20))
    assert balanced_weights([10, 0], True, 40) == pytest.approx((3.0, 1.0))
