"""Exported potentials: ``python -m eqna.export MODEL -o FILE.pt2`` and the ``.pt2`` they make,
which :class:`eqna.calculators.EqnaCalculator`, ``eqna-md`` and :mod:`eqna.lammps` take like a
model.pt (:mod:`eqna.export.exported`; how the trace works: :mod:`eqna.export.trace`)."""

from eqna.export.exported import KINDS, ExportedModel, export_model, is_exported_file
from eqna.export.trace import UnsupportedForExport, check_exportable

__all__ = [
    "KINDS",
    "ExportedModel",
    "UnsupportedForExport",
    "check_exportable",
    "export_model",
    "is_exported_file",
]
