"""Config schema and loader for ``python -m eqna.train CONFIG [dotted.key=value ...]``.

A config is a YAML file with three sections (omitted sections or keys take their defaults)::

    model:                  # free-form: ``family`` plus keyword arguments of the builder
      family: equivariant
      num_channels: 64
    data:                   # see DataConfig
      train: embedded:water
    training:               # see TrainingConfig
      lr: 1.0e-3

Command-line overrides ``dotted.key=value`` are applied on top of the file; the value is parsed
as YAML (``training.lr=1e-3`` is a float, ``data.train=foo.xyz`` a string,
``model.radial_mlp=[64,64]`` a list, ``data.valid=null`` None). Unlike plain YAML 1.1,
exponent floats without a dot (``1e-3``) are read as floats, in the file too.

Validation collects every problem (unknown key with the closest valid key, wrong type, value out
of range) and raises one :class:`ConfigError`, one problem per line, each naming the config file
(or the command-line override) and the full dotted key. Ints are accepted where a float is
expected, bools are never accepted as ints, ``null`` only where a key is optional.

Model section: ``model.family`` (default ``"equivariant"``) selects the builder
``eqna.models.registry.MODEL_BUILDERS[family]``. The other keys are the builder's keyword
parameters, type-checked against its annotations; omitted ones get the builder's defaults, so the
resolved config is complete (tuples are stored as lists). Parameters named in
:data:`DATA_DERIVED` are computed from the training data and may not be set.

Paths (``data.train``, ``data.valid``, ``data.test`` and a file given as ``data.e0s``) are
resolved relative to the current working directory when training runs, NOT relative to the
config file; the strings are kept as written. ``embedded:NAME`` names a data set shipped in
``eqna/data/embedded``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from eqna.train import schema
from eqna.train.schema import ConfigError, Errors

__all__ = [
    "DATA_DERIVED",
    "Config",
    "ConfigError",
    "DataConfig",
    "TrainingConfig",
    "config_from_dict",
    "load_config",
    "validate_model_section",
]

DATA_DERIVED = (
    "elements",
    "atomic_energies",
    "avg_num_neighbors",
    "scale",
    "shift",
    "target_mean",
    "target_std",
)
"""Model builder parameters filled in from the training data; setting them is an error."""

DEFAULT_FAMILY = "equivariant"
SECTIONS = ("model", "data", "training")
E0S_MODES = ("auto", "isolated", "least_squares")
_SET_BY_MODEL = {"irreps_in": "is set by the model"}
_DERIVED = {
    **dict.fromkeys(DATA_DERIVED, "is computed from the data and cannot be set in the config"),
    "atom_feature_table": "is read from model.atom_features_file when training starts",
}


@dataclasses.dataclass
class DataConfig:
    """The ``data`` section; each field's comment is its user documentation."""

    train: str  # training frames: extxyz path or ``embedded:NAME`` (required)
    valid: str | None = None  # validation frames; None: split valid_fraction off ``train``
    test: str | None = None  # test frames; None: split test_fraction off ``train``
    valid_fraction: float = 0.1  # fraction of ``train`` held out for validation, in [0, 1)
    test_fraction: float = 0.1  # fraction of ``train`` held out for testing, in [0, 1)
    split_seed: int = 0  # seed of the random train/valid/test split
    energy_key: str = "energy"  # ``atoms.info`` key of the reference energy (eV)
    forces_key: str = "forces"  # ``atoms.arrays`` key of the reference forces (eV/Å)
    stress_key: str = "stress"  # ``atoms.info`` key of the reference stress (eV/Å³)
    # Isolated-atom energies: "auto" (isolated atoms in the data if present, else least
    # squares), "isolated" (must be in the data), "least_squares", a path to an extxyz file of
    # isolated atoms, or a mapping element symbol -> energy in eV.
    e0s: str | dict[str, float] = "auto"
    batch_size: int = 8  # training batch size in frames, >= 1
    valid_batch_size: int = 32  # validation/test batch size, >= 1
    max_train_frames: int | None = None  # first frames of ``train`` kept, before any split
    # ``atoms.info`` key(s) of a per-structure target (one key, or a list for a vector target);
    # required by property models (model.output: property), which then need no energies
    target_key: str | list[str] | None = None


@dataclasses.dataclass
class TrainingConfig:
    """The ``training`` section; each field's comment is its user documentation."""

    seed: int = 0  # global random seed, >= 0
    dtype: Literal["float32", "float64"] = "float32"  # floating point precision
    max_epochs: int = 100  # maximum number of epochs, >= 1
    max_time_minutes: float | None = None  # wall-clock limit in minutes (None: unlimited)
    optimizer: Literal["adamw", "adam_amsgrad"] = "adamw"
    lr: float = 5e-3  # initial learning rate, > 0
    weight_decay: float = 0.0  # >= 0
    # "plateau" (reduce lr on validation-loss plateau), "cosine" (anneal to min_lr) or "none"
    scheduler: Literal["plateau", "cosine", "none"] = "plateau"
    scheduler_patience: int = 10  # plateau patience in epochs, >= 0
    scheduler_factor: float = 0.5  # plateau lr factor, in (0, 1)
    min_lr: float = 1e-6  # learning rate floor of the schedulers, >= 0
    ema_decay: float | None = 0.99  # weight EMA decay in (0, 1); None disables the EMA
    energy_weight: float = 1.0  # loss weight of energies (per atom), >= 0
    forces_weight: float = 10.0  # loss weight of forces, >= 0
    stress_weight: float = 0.0  # loss weight of stresses, >= 0
    # lambda of the L1 penalty lambda * sum_k g_k on the neural-atom gates (no effect without
    # neural atoms or with learn_gates: false), >= 0
    gate_penalty: float = 1e-3
    # property models: loss on residuals in units of the target std ("mae", "mse" or "huber")
    property_loss: Literal["mae", "mse", "huber"] = "mae"
    huber_delta: float = 0.1  # Huber transition in units of the target std, > 0
    early_stopping_patience: int | None = 30  # epochs without improvement; None disables
    gradient_clip: float | None = 10.0  # gradient norm clip threshold, > 0; None disables
    accelerator: Literal["auto", "cpu", "gpu"] = "auto"
    progress_bar: bool = True  # show the Lightning progress bar
    log_every_n_steps: int = 10  # logging interval in optimisation steps, >= 1


@dataclasses.dataclass
class Config:
    """A validated, complete configuration.

    Attributes:
        model: Resolved model section: ``family`` plus every builder keyword argument.
        data: The data section.
        training: The training section.
        name: Stem of the config file (used to name runs).
        source: Path of the config file as given (``"<dict>"`` if built from a dict).
    """

    model: dict[str, Any]
    data: DataConfig
    training: TrainingConfig
    name: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Returns the resolved config as a plain YAML-serialisable dict (model/data/training)."""
        return {
            "model": schema.plain(self.model),
            "data": schema.plain(dataclasses.asdict(self.data)),
            "training": schema.plain(dataclasses.asdict(self.training)),
        }


_RANGE_CHECKS: dict[str, dict[str, schema.Check]] = {
    "data": {
        "train": schema.NONEMPTY,
        "valid": schema.NONEMPTY,
        "test": schema.NONEMPTY,
        "valid_fraction": schema.FRACTION,
        "test_fraction": schema.FRACTION,
        "split_seed": schema.NONNEG,
        "energy_key": schema.NONEMPTY,
        "forces_key": schema.NONEMPTY,
        "stress_key": schema.NONEMPTY,
        "batch_size": schema.AT_LEAST_1,
        "valid_batch_size": schema.AT_LEAST_1,
        "max_train_frames": schema.AT_LEAST_1,
    },
    "training": {
        "seed": schema.NONNEG,
        "max_epochs": schema.AT_LEAST_1,
        "max_time_minutes": schema.POSITIVE,
        "lr": schema.POSITIVE,
        "weight_decay": schema.NONNEG,
        "scheduler_patience": schema.NONNEG,
        "scheduler_factor": schema.OPEN_UNIT,
        "min_lr": schema.NONNEG,
        "ema_decay": schema.OPEN_UNIT,
        "energy_weight": schema.NONNEG,
        "forces_weight": schema.NONNEG,
        "stress_weight": schema.NONNEG,
        "gate_penalty": schema.NONNEG,
        "huber_delta": schema.POSITIVE,
        "early_stopping_patience": schema.AT_LEAST_1,
        "gradient_clip": schema.POSITIVE,
        "log_every_n_steps": schema.AT_LEAST_1,
    },
}


def _validate_model(section: Mapping, builders: Mapping[str, Callable], errs: Errors) -> dict:
    """Validates the model section into ``errs``; returns the resolved section."""
    family = section.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str):
        errs.wrong_type("model.family", str, family)
        return {}
    if family not in builders:
        known = ", ".join(sorted(builders)) or "(none registered)"
        errs.add(
            "model.family",
            f"model.family: unknown model family {family!r}; available families: {known}",
        )
        return {}
    resolved = schema.validate_kwargs(
        section,
        builders[family],
        "model.",
        errs,
        skip=("family",),
        forbidden=_DERIVED,
        context=f" (family {family!r})",
    )
    # a builder may declare mapping parameters that are keyword arguments of a module
    for name, module in getattr(builders[family], "nested_sections", {}).items():
        if isinstance(resolved.get(name), Mapping):
            resolved[name] = schema.validate_kwargs(
                resolved[name], module, f"model.{name}.", errs, forbidden=_SET_BY_MODEL
            )
    return {"family": family, **resolved}


def validate_model_section(
    section: Mapping, builders: Mapping[str, Callable], source: str = "<dict>"
) -> dict:
    """Validates a model section against ``builders[section['family']]``'s signature.

    Args:
        section: The raw ``model`` mapping.
        builders: Model family name -> builder function.
        source: Name of the config file, used in error messages.

    Returns:
        The resolved section: ``family`` plus every builder keyword argument (defaults filled).

    Raises:
        ConfigError: Listing every problem found.
    """
    errs = Errors(source)
    if not isinstance(section, Mapping):
        errs.add("model", f"section 'model' must be a mapping, got {type(section).__name__}")
        errs.raise_if_any()
    resolved = _validate_model(section, builders, errs)
    errs.raise_if_any()
    return resolved


def _check_data(data: DataConfig, errs: Errors) -> None:
    """Cross-field checks of the data section."""
    if data.valid_fraction + data.test_fraction >= 1:
        errs.add(
            "data.valid_fraction",
            "data.valid_fraction + data.test_fraction must be < 1, "
            f"got {data.valid_fraction} + {data.test_fraction}",
        )
    if isinstance(data.e0s, str) and not data.e0s.strip():
        errs.add(
            "data.e0s",
            f"data.e0s: must be one of {', '.join(E0S_MODES)}, a file path "
            "or a mapping element -> energy",
        )
    for symbol in data.e0s if isinstance(data.e0s, dict) else ():
        if not re.fullmatch(r"[A-Z][a-z]{0,2}", symbol):
            errs.add(f"data.e0s.{symbol}", f"data.e0s: {symbol!r} is not an element symbol")


def _check_task(model: dict, data: DataConfig, errs: Errors) -> None:
    """A property model needs a target key; a potential must not have one."""
    output = model.get("output", "energy")
    if output == "property" and not data.target_key:
        errs.add(
            "data.target_key",
            f"data.target_key: model.output is 'property' (family {model['family']!r}): name "
            "the atoms.info key of the per-structure target, e.g. data.target_key=e_form",
        )
    if output != "property" and data.target_key:
        errs.add(
            "data.target_key",
            f"data.target_key is set ({data.target_key!r}) but model.output is {output!r}: set "
            "model.output=property to train on it, or remove data.target_key",
        )


def _build_config(raw: Any, source: str, builders: Mapping | None, origins: Mapping) -> Config:
    """Validates a raw config mapping into a :class:`Config`."""
    errs = Errors(source, origins)
    if not isinstance(raw, Mapping):
        errs.add(
            "",
            f"top level must be a mapping with sections {', '.join(SECTIONS)}, "
            f"got {type(raw).__name__}",
        )
        errs.raise_if_any()
    sections: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SECTIONS:
            errs.unknown("", key, SECTIONS, what="section")
        elif value is not None and not isinstance(value, Mapping):
            errs.add(key, f"section '{key}' must be a mapping, got {value!r}")
            sections[key] = None
        else:
            sections[key] = value or {}
    if builders is None:
        from eqna.models.registry import MODEL_BUILDERS

        builders = MODEL_BUILDERS
    model = data = training = None
    if sections.get("model", {}) is not None:
        model = _validate_model(sections.get("model", {}), builders, errs)
    if sections.get("data", {}) is not None:
        data = schema.build_dataclass(
            DataConfig, sections.get("data", {}), "data", errs, _RANGE_CHECKS["data"]
        )
    if sections.get("training", {}) is not None:
        training = schema.build_dataclass(
            TrainingConfig,
            sections.get("training", {}),
            "training",
            errs,
            _RANGE_CHECKS["training"],
        )
    if data is not None:
        _check_data(data, errs)
    if data is not None and model:
        _check_task(model, data, errs)
    errs.raise_if_any()
    return Config(model, data, training, name=Path(source).stem, source=source)


def config_from_dict(
    d: Mapping, source: str = "<dict>", *, builders: Mapping[str, Callable] | None = None
) -> Config:
    """Builds a validated :class:`Config` from a mapping (e.g. ``Config.to_dict()`` of a model).

    Args:
        d: Mapping with sections ``model``, ``data``, ``training``.
        source: Name used in error messages; its stem becomes ``Config.name``.
        builders: Model builders; defaults to ``eqna.models.registry.MODEL_BUILDERS``.

    Raises:
        ConfigError: Listing every problem found.
    """
    return _build_config(copy.deepcopy(d), source, builders, {})


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    builders: Mapping[str, Callable] | None = None,
) -> Config:
    """Loads, overrides and validates a YAML config file.

    Args:
        path: The YAML file.
        overrides: ``dotted.key=value`` strings; values are parsed as YAML.
        builders: Model builders; defaults to ``eqna.models.registry.MODEL_BUILDERS``.

    Returns:
        The validated, complete config.

    Raises:
        ConfigError: Missing file, YAML syntax error, malformed override or invalid config
            (all validation problems at once, one per line).
    """
    path = Path(path)
    raw = schema.read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: top level must be a mapping with sections "
            f"{', '.join(SECTIONS)}, got {type(raw).__name__}"
        )
    origins = schema.apply_overrides(raw, overrides)
    return _build_config(raw, str(path), builders, origins)
