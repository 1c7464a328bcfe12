"""Evaluation of a saved model on labelled data: metrics, parity arrays and plots.

``eqna-evaluate MODEL DATA`` (or ``python -m eqna.evaluate``) is :func:`eqna.evaluate.cli.main`.
"""

from eqna.evaluate.evaluation import evaluate_dataset

__all__ = ["evaluate_dataset"]
