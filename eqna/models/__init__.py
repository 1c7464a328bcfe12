"""Model families, the one model interface, model files and the zoo by name."""

from eqna.models.interface import AtomisticModel
from eqna.models.io import build_model, load_model, save_model
from eqna.models.zoo import resolve_model_path

__all__ = ["AtomisticModel", "build_model", "load_model", "resolve_model_path", "save_model"]
