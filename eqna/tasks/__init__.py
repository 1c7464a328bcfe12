"""What a model predicts and how it is scored: tasks, losses, metrics and quantity names.

This room sits below both training (:mod:`eqna.train`) and evaluation (:mod:`eqna.evaluate`),
so the two score a model with the same code.
"""

from eqna.tasks.metrics import FACTORS, QUANTITIES, UNITS, ErrorAccumulator, format_table
from eqna.tasks.tasks import ClassificationTask, PotentialTask, PropertyTask, make_task

__all__ = [
    "FACTORS",
    "QUANTITIES",
    "UNITS",
    "ErrorAccumulator",
    "ClassificationTask",
    "PotentialTask",
    "PropertyTask",
    "format_table",
    "make_task",
]
