"""Config schema and loader for ``python -m eqna.train CONFIG [dotted.key=value ...]``.

A config is a YAML file with sections ``model`` (``family`` plus keyword arguments of that
family's builder in ``eqna.models.registry.MODEL_BUILDERS``, checked against its signature),
``data`` (:class:`DataConfig`) and ``training`` (:class:`TrainingConfig`), and optionally
``base:``, the config(s) it changes (:mod:`eqna.train.yaml_io`). Omitted keys take their
defaults, so the resolved config is complete. Overrides ``dotted.key=value`` (values parsed as
YAML) apply last. Every problem is reported at once, one line each, naming the file or override
that set the key and the full dotted key; type rules: :mod:`eqna.train.schema`.

Data paths are relative to the working directory when training runs, not to the config file;
``embedded:NAME`` names a data set shipped in ``eqna/data/embedded``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from eqna.data.class_labels import OUTPUTS as CLASSIFIER_OUTPUTS
from eqna.train.errors import ConfigError, Errors
from eqna.train.schema import Section, kwargs_model, plain
from eqna.train.sections import DataConfig, TrainingConfig
from eqna.train.yaml_io import SECTIONS, apply_overrides, not_a_config, read_config

__all__ = [
    "DATA_DERIVED",
    "Config",
    "ConfigError",
    "DataConfig",
    "TrainingConfig",
    "config_from_dict",
    "load_config",
    "model_section",
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
    "classes",
)
"""Model builder parameters filled in from the training data; setting them is an error."""

DEFAULT_FAMILY = "equivariant"
_DERIVED = (
    *((name, "is computed from the data and cannot be set in the config") for name in DATA_DERIVED),
    ("atom_feature_table", "is read from model.atom_features_file when training starts"),
    ("convolution", "is set by model.family"),
)
_SET_BY_MODEL = (("irreps_in", "is set by the model"), ("cutoff", "is model.r_max"))


@dataclasses.dataclass
class Config:
    """A validated, complete configuration.

    ``model`` holds ``family`` and every builder keyword argument; ``name`` is the config file's
    stem (it names runs), ``source`` its path as given (``"<dict>"`` if built from a dict).
    """

    model: dict[str, Any]
    data: DataConfig
    training: TrainingConfig
    name: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as a plain YAML-serialisable dict (model/data/training)."""
        return {
            "model": plain(self.model),
            "data": self.data.model_dump(),
            "training": self.training.model_dump(),
        }


def model_section(family: str, builder: Callable) -> type[Section]:
    """The schema of a ``model`` section of ``family``: its builder's keyword parameters."""
    from eqna.models.registry import NESTED_SECTIONS

    nested = NESTED_SECTIONS.get(family, {})
    nested = tuple((key, kwargs_model(cls, _SET_BY_MODEL)) for key, cls in nested.items())
    family_key = ("family", str, family, "model family, a key of MODEL_BUILDERS")
    init_key = ("init_from", str | None, None, INIT_FROM_DOC)
    return kwargs_model(builder, _DERIVED, nested, (family_key, init_key))


INIT_FROM_DOC = (
    "fine-tune: start from this eqna model (zoo name or model.pt) of the same architecture; "
    "its E0s are kept unless data.e0s gives new ones"
)
NOT_BUILDER_KEYS = ("family", "init_from")
"""Keys of a resolved model section that are not arguments of the network constructor."""


def _validate(schema: type[Section], section: Mapping, prefix: str, errs: Errors, note=""):
    """``section`` validated as ``schema``; None if it is None or invalid (recorded in ``errs``)."""
    if section is None:
        return None
    try:
        return schema.model_validate(section)
    except ValidationError as exc:
        errs.collect(exc, schema, section, prefix, note)
        return None


def _validate_model(section: Mapping, builders: Mapping[str, Callable], errs: Errors) -> dict:
    """The resolved model section; {} if None or invalid (problems recorded in ``errs``)."""
    family = DEFAULT_FAMILY if section is None else section.get("family", DEFAULT_FAMILY)
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
    if section is None:
        return {}
    schema = model_section(family, builders[family])
    model = _validate(schema, section, "model.", errs, f" (family {family!r})")
    return {} if model is None else plain(model.model_dump())


def _not_a_mapping(key: str, value: Any) -> str:
    return f"section '{key}' must be a mapping, got {value!r}"


def validate_model_section(
    section: Mapping, builders: Mapping[str, Callable], source: str = "<dict>"
) -> dict:
    """The resolved model section: ``family`` and every keyword argument of its builder
    (defaults filled). Raises ConfigError listing every problem, labelled ``source``."""
    errs = Errors(source)
    if not isinstance(section, Mapping):
        raise ConfigError(f"{source}: {_not_a_mapping('model', section)}")
    resolved = _validate_model(plain(section), builders, errs)
    errs.raise_if_any()
    return resolved


def _check_task(model: dict, data: DataConfig, training, errs: Errors) -> None:
    """A property model or classifier needs a target key (and has its own loss); a potential
    must not have one; class settings only for classifiers."""
    output = model.get("output", "energy")
    target = output in ("property", *CLASSIFIER_OUTPUTS)
    if target and training is not None and training.loss != "mse":
        errs.add(
            "training.loss",
            f"training.loss: {training.loss!r} is the loss of potentials; a model with "
            f"model.output {output!r} has its own (property models: training.property_loss)",
        )
    if target and not data.target_key:
        example = "e_form" if output == "property" else "label"
        errs.add(
            "data.target_key",
            f"data.target_key: model.output is {output!r} (family {model['family']!r}): name "
            f"the atoms.info key of the per-structure target, e.g. data.target_key={example}",
        )
    if not target and data.target_key:
        errs.add(
            "data.target_key",
            f"data.target_key is set ({data.target_key!r}) but model.output is {output!r}: set "
            "model.output=property to train on it, or remove data.target_key",
        )
    classifier = output in CLASSIFIER_OUTPUTS
    if classifier and isinstance(data.target_key, list) and len(data.target_key) != 1:
        errs.add(
            "data.target_key",
            f"data.target_key: a classifier (model.output {output!r}) reads one label key, "
            f"got {data.target_key!r} (a multilabel label is one list of 0/1)",
        )
    if not classifier and data.classes is not None:
        errs.add("data.classes", f"data.classes is for classifiers; model.output is {output!r}")
    if training is not None and not classifier and training.class_weights is not None:
        errs.add(
            "training.class_weights",
            f"training.class_weights is for classifiers; model.output is {output!r}",
        )
    weights, classes = getattr(training, "class_weights", None), data.classes
    if classifier and isinstance(weights, list) and classes is not None:
        count = classes if isinstance(classes, int) else len(classes)
        if len(weights) != count:
            errs.add(
                "training.class_weights",
                f"training.class_weights has {len(weights)} entries, data.classes {count}",
            )


def _build_config(raw: Any, source: str, builders: Mapping | None, origins: Mapping) -> Config:
    """Validates a raw config mapping into a :class:`Config`."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: {not_a_config(raw)}")
    if builders is None:
        from eqna.models.registry import MODEL_BUILDERS as builders
    errs = Errors(source, origins)
    for key, value in raw.items():
        if key not in SECTIONS:
            errs.unknown(str(key), SECTIONS, what="section")
        elif value is not None and not isinstance(value, Mapping):
            errs.add(key, _not_a_mapping(key, value))
    sections = {key: plain(raw.get(key) or {}) for key in SECTIONS}
    sections = {key: value if isinstance(value, dict) else None for key, value in sections.items()}
    model = _validate_model(sections["model"], builders, errs)
    data = _validate(DataConfig, sections["data"], "data.", errs)
    training = _validate(TrainingConfig, sections["training"], "training.", errs)
    if data is not None and model:
        _check_task(model, data, training, errs)
    errs.raise_if_any()
    return Config(model, data, training, name=Path(source).stem, source=source)


def config_from_dict(
    d: Mapping, source: str = "<dict>", *, builders: Mapping[str, Callable] | None = None
) -> Config:
    """A validated :class:`Config` from a mapping of sections (e.g. a saved ``to_dict()``);
    ``source`` labels error lines, ``builders`` default to ``MODEL_BUILDERS``."""
    return _build_config(d, source, builders, {})


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    *,
    builders: Mapping[str, Callable] | None = None,
) -> Config:
    """The validated config of a YAML file (merged on its bases) with ``overrides`` applied.

    Raises ConfigError for a missing file or base, a YAML syntax error, a malformed override or
    an invalid config (every problem at once, one per line).
    """
    path = Path(path)
    raw, origins = read_config(path)
    apply_overrides(raw, overrides, origins)
    return _build_config(raw, str(path), builders, origins)


def load_architecture(path: str | Path) -> dict:
    """The resolved ``model`` section of a config file (bases merged, defaults filled),
    without its data-derived keys: what benchmark tools need to build a random model."""
    from eqna.models.registry import MODEL_BUILDERS

    raw, _ = read_config(Path(path))
    model = validate_model_section(raw.get("model") or {}, MODEL_BUILDERS, str(path))
    model.pop("init_from")
    return model
