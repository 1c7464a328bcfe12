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
import difflib
import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml

__all__ = ["DATA_DERIVED", "Config", "ConfigError", "DataConfig", "TrainingConfig",
           "config_from_dict", "load_config", "validate_model_section"]

DATA_DERIVED = ("elements", "atomic_energies", "avg_num_neighbors", "scale", "shift")
"""Model builder parameters filled in from the training data; setting them is an error."""

DEFAULT_FAMILY = "equivariant"
SECTIONS = ("model", "data", "training")
E0S_MODES = ("auto", "isolated", "least_squares")


class ConfigError(ValueError):
    """Invalid configuration; ``errors`` holds one line per problem (also joined in the message)."""

    def __init__(self, errors: str | Sequence[str]):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


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
    max_train_frames: int | None = None  # use at most this many training frames (None: all)


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
            "model": _plain(self.model),
            "data": _plain(dataclasses.asdict(self.data)),
            "training": _plain(dataclasses.asdict(self.training)),
        }


_NONNEG = (lambda v: v >= 0, "must be >= 0")
_POSITIVE = (lambda v: v > 0, "must be > 0")
_AT_LEAST_1 = (lambda v: v >= 1, "must be >= 1")
_OPEN_UNIT = (lambda v: 0 < v < 1, "must be in (0, 1)")
_FRACTION = (lambda v: 0 <= v < 1, "must be in [0, 1)")
_NONEMPTY = (lambda v: bool(v.strip()), "must not be empty")
_RANGE_CHECKS: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "data": {
        "train": _NONEMPTY, "valid": _NONEMPTY, "test": _NONEMPTY, "valid_fraction": _FRACTION,
        "test_fraction": _FRACTION, "split_seed": _NONNEG, "energy_key": _NONEMPTY,
        "forces_key": _NONEMPTY, "stress_key": _NONEMPTY, "batch_size": _AT_LEAST_1,
        "valid_batch_size": _AT_LEAST_1, "max_train_frames": _AT_LEAST_1,
    },
    "training": {
        "seed": _NONNEG, "max_epochs": _AT_LEAST_1, "max_time_minutes": _POSITIVE,
        "lr": _POSITIVE, "weight_decay": _NONNEG, "scheduler_patience": _NONNEG,
        "scheduler_factor": _OPEN_UNIT, "min_lr": _NONNEG, "ema_decay": _OPEN_UNIT,
        "energy_weight": _NONNEG, "forces_weight": _NONNEG, "stress_weight": _NONNEG,
        "early_stopping_patience": _AT_LEAST_1, "gradient_clip": _POSITIVE,
        "log_every_n_steps": _AT_LEAST_1,
    },
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (exponent without a dot) as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class _Errors:
    """Collects error lines, labelling each with where its key was set."""

    def __init__(self, source: str, origins: Mapping[str, str] | None = None):
        self.source, self.origins, self.lines = source, dict(origins or {}), []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self._label(key)}: {message}")

    def _label(self, key: str) -> str:
        parts = key.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in self.origins:
                return self.origins[".".join(parts[:i])]
        return next((v for k, v in self.origins.items() if k.startswith(key + ".")), self.source)

    def unknown(self, prefix: str, key: Any, valid: Sequence[str], what: str = "key") -> None:
        full = f"{prefix}{key}"
        close = _suggest(str(key), list(valid))
        hint = f" (did you mean '{prefix}{close}'?)" if close else ""
        self.add(full, f"unknown {what} '{full}'{hint}")

    def wrong_type(self, key: str, annotation: Any, value: Any) -> None:
        got = f"{value!r} ({type(value).__name__})"
        self.add(key, f"{key}: expected {_type_name(annotation)}, got {got}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError(self.lines)


def _suggest(key: str, valid: list[str]) -> str | None:
    """Closest valid name: difflib match, else the most similar name sharing a ``_`` token."""
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return close[0]
    tokens = set(key.split("_")) - {""}
    shared = [v for v in valid if tokens & set(v.split("_"))]
    return max(shared, key=lambda v: difflib.SequenceMatcher(None, key, v).ratio(), default=None)


_UNIONS = (Union, types.UnionType)
_SEQUENCES = (list, tuple, Sequence)


def _type_name(tp: Any) -> str:
    """Human-readable name of a type annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in _UNIONS:
        return " | ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "None"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else _type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def _matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` is acceptable for annotation ``tp`` (int for float, never bool for int)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in (Any, inspect.Parameter.empty) or isinstance(tp, str):
        return True
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in _UNIONS:
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp in (int, float):
        number = (int, float) if tp is float else int
        return isinstance(value, number) and not isinstance(value, bool)
    if tp in _SEQUENCES or origin in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(_matches, value, args))
        return not args or all(_matches(v, args[0]) for v in value)
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False
        return not args or all(_matches(k, args[0]) and _matches(v, args[1])
                               for k, v in value.items())
    return isinstance(value, origin or tp) if isinstance(origin or tp, type) else True


def _coerce(value: Any, tp: Any) -> Any:
    """Converts ints to floats where ``tp`` wants a float; sequences become lists."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is float and type(value) is int:
        return float(value)
    if origin in _UNIONS:
        if type(value) is int and int in args:
            return value
        return next((_coerce(value, a) for a in args if _matches(value, a)), value)
    if isinstance(value, (list, tuple)):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return [_coerce(v, a) for v, a in zip(value, args, strict=True)]
        return [_coerce(v, args[0] if args else Any) for v in value]
    if isinstance(value, Mapping) and len(args) == 2:
        return {k: _coerce(v, args[1]) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """Recursively converts tuples to lists and mappings to dicts."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _builder_params(builder: Callable) -> dict[str, inspect.Parameter]:
    """Keyword parameters of ``builder``, minus the data-derived ones."""
    try:
        sig = inspect.signature(builder, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        sig = inspect.signature(builder)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {n: p for n, p in sig.parameters.items() if p.kind in kinds and n not in DATA_DERIVED}


def _validate_model(section: Mapping, builders: Mapping[str, Callable], errs: _Errors) -> dict:
    """Validates the model section into ``errs``; returns the resolved section."""
    family = section.get("family", DEFAULT_FAMILY)
    if not isinstance(family, str):
        errs.wrong_type("model.family", str, family)
        return {}
    if family not in builders:
        known = ", ".join(sorted(builders)) or "(none registered)"
        errs.add("model.family", f"model.family: unknown model family {family!r}; "
                                 f"available families: {known}")
        return {}
    params = _builder_params(builders[family])
    given = {}
    for key, value in section.items():
        full = f"model.{key}"
        if key == "family":
            continue
        if key in DATA_DERIVED:
            errs.add(full, f"{full}: is computed from the data and cannot be set in the config")
        elif key not in params:
            errs.unknown("model.", key, ["family", *params])
        elif _matches(value, params[key].annotation):
            given[key] = _coerce(value, params[key].annotation)
        else:
            errs.wrong_type(full, params[key].annotation, value)
    resolved = {"family": family}
    for name, param in params.items():
        if name in given or name in section:
            resolved[name] = given.get(name)
        elif param.default is inspect.Parameter.empty:
            errs.add(f"model.{name}", f"missing required key 'model.{name}' (family {family!r})")
        else:
            resolved[name] = _plain(param.default)
    return resolved


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
    errs = _Errors(source)
    if not isinstance(section, Mapping):
        errs.add("model", f"section 'model' must be a mapping, got {type(section).__name__}")
        errs.raise_if_any()
    resolved = _validate_model(section, builders, errs)
    errs.raise_if_any()
    return resolved


def _build_section(cls: type, section: Mapping, name: str, errs: _Errors) -> Any:
    """Validates a dataclass section; returns the instance, or None if required keys are missing."""
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in section.items():
        full = f"{name}.{key}"
        if key not in hints:
            errs.unknown(f"{name}.", key, list(hints))
        elif not _matches(value, hints[key]):
            errs.wrong_type(full, hints[key], value)
        else:
            values[key] = _coerce(value, hints[key])
            check = _RANGE_CHECKS[name].get(key)
            if check is not None and value is not None and not check[0](value):
                errs.add(full, f"{full}: {check[1]}, got {value!r}")
    for f in dataclasses.fields(cls):
        if f.name not in section and f.default is dataclasses.MISSING:
            errs.add(f"{name}.{f.name}", f"missing required key '{name}.{f.name}'")
    try:
        return cls(**values)
    except TypeError:
        return None


def _check_data(data: DataConfig, errs: _Errors) -> None:
    """Cross-field checks of the data section."""
    if data.valid_fraction + data.test_fraction >= 1:
        errs.add("data.valid_fraction", "data.valid_fraction + data.test_fraction must be < 1, "
                 f"got {data.valid_fraction} + {data.test_fraction}")
    if isinstance(data.e0s, str) and not data.e0s.strip():
        errs.add("data.e0s", f"data.e0s: must be one of {', '.join(E0S_MODES)}, a file path "
                 "or a mapping element -> energy")
    for symbol in data.e0s if isinstance(data.e0s, dict) else ():
        if not re.fullmatch(r"[A-Z][a-z]{0,2}", symbol):
            errs.add(f"data.e0s.{symbol}", f"data.e0s: {symbol!r} is not an element symbol")


def _build_config(raw: Any, source: str, builders: Mapping | None, origins: Mapping) -> Config:
    """Validates a raw config mapping into a :class:`Config`."""
    errs = _Errors(source, origins)
    if not isinstance(raw, Mapping):
        errs.add("", f"top level must be a mapping with sections {', '.join(SECTIONS)}, "
                     f"got {type(raw).__name__}")
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
        data = _build_section(DataConfig, sections.get("data", {}), "data", errs)
    if sections.get("training", {}) is not None:
        training = _build_section(TrainingConfig, sections.get("training", {}), "training", errs)
    if data is not None:
        _check_data(data, errs)
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


def _read_yaml(path: Path) -> Any:
    """Reads a YAML file, turning I/O and syntax errors into ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (looked for {path.resolve()})")
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None


def _apply_overrides(raw: dict, overrides: Sequence[str]) -> dict[str, str]:
    """Applies ``dotted.key=value`` overrides to ``raw`` in place; returns key -> label."""
    origins, errors = {}, []
    for item in overrides:
        label = f"command-line override '{item}'"
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            errors.append(f"{label}: expected dotted.key=value, e.g. training.lr=1e-3")
            continue
        try:
            value = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            errors.append(f"{label}: cannot parse value {text!r}: {exc}")
            continue
        node = raw
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                errors.append(f"{label}: cannot set '{key.strip()}': "
                              f"'{'.'.join(parts[: i + 1])}' is not a mapping")
                break
            node = node[part]
        else:
            node[parts[-1]] = value
            origins[".".join(parts)] = label
    if errors:
        raise ConfigError(errors)
    return origins


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
    raw = _read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping with sections "
                          f"{', '.join(SECTIONS)}, got {type(raw).__name__}")
    origins = _apply_overrides(raw, overrides)
    return _build_config(raw, str(path), builders, origins)
