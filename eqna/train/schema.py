"""Generic schema machinery for YAML configs: loading, overrides, type checks, error collection.

Nothing here knows eqna's sections; :mod:`eqna.train.config` (which documents the type rules)
builds the config schema on top of it.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

import yaml

__all__ = [
    "AT_LEAST_1",
    "FRACTION",
    "NONEMPTY",
    "NONNEG",
    "OPEN_UNIT",
    "POSITIVE",
    "Check",
    "ConfigError",
    "Errors",
    "Loader",
    "apply_overrides",
    "build_dataclass",
    "coerce",
    "matches",
    "plain",
    "read_yaml",
    "signature_params",
    "suggest",
    "type_name",
    "validate_kwargs",
]


class ConfigError(ValueError):
    """Invalid configuration; ``errors`` holds one line per problem (also joined in the message)."""

    def __init__(self, errors: str | Sequence[str]):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (exponent without a dot) as a float."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: Path) -> Any:
    """Reads a YAML file with :class:`Loader`, turning I/O and syntax errors into ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (looked for {path.resolve()})")
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.load(text, Loader=Loader)  # Loader is a SafeLoader
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None


def apply_overrides(raw: dict, overrides: Sequence[str]) -> dict[str, str]:
    """Applies ``dotted.key=value`` overrides (values parsed as YAML) to ``raw`` in place.

    Returns dotted key -> override label (for :class:`Errors` ``origins``); raises ConfigError
    listing every malformed override.
    """
    origins, errors = {}, []
    for item in overrides:
        label = f"command-line override '{item}'"
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            errors.append(f"{label}: expected dotted.key=value, e.g. training.lr=1e-3")
            continue
        try:
            value = yaml.load(text, Loader=Loader)
        except yaml.YAMLError as exc:
            errors.append(f"{label}: cannot parse value {text!r}: {exc}")
            continue
        node = raw
        for i, part in enumerate(parts[:-1]):
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                errors.append(
                    f"{label}: cannot set '{key.strip()}': "
                    f"'{'.'.join(parts[: i + 1])}' is not a mapping"
                )
                break
            node = node[part]
        else:
            node[parts[-1]] = value
            origins[".".join(parts)] = label
    if errors:
        raise ConfigError(errors)
    return origins


class Errors:
    """Collects error lines, labelling each with where its key was set.

    ``origins`` maps dotted keys set elsewhere (e.g. by overrides) to their label; other keys
    are labelled ``source``.
    """

    def __init__(self, source: str, origins: Mapping[str, str] | None = None):
        self.source, self.origins, self.lines = source, dict(origins or {}), []

    def add(self, key: str, message: str) -> None:
        """Records ``message`` for dotted ``key``, prefixed with the key's origin."""
        self.lines.append(f"{self._label(key)}: {message}")

    def _label(self, key: str) -> str:
        parts = key.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in self.origins:
                return self.origins[".".join(parts[:i])]
        return next((v for k, v in self.origins.items() if k.startswith(key + ".")), self.source)

    def unknown(self, prefix: str, key: Any, valid: Sequence[str], what: str = "key") -> None:
        """Records an unknown ``prefix + key``, suggesting the closest of ``valid``."""
        full = f"{prefix}{key}"
        close = suggest(str(key), list(valid))
        hint = f" (did you mean '{prefix}{close}'?)" if close else ""
        self.add(full, f"unknown {what} '{full}'{hint}")

    def wrong_type(self, key: str, annotation: Any, value: Any) -> None:
        """Records that ``value`` given for ``key`` does not match ``annotation``."""
        got = f"{value!r} ({type(value).__name__})"
        self.add(key, f"{key}: expected {type_name(annotation)}, got {got}")

    def raise_if_any(self) -> None:
        """Raises one :class:`ConfigError` with every recorded line, if there are any."""
        if self.lines:
            raise ConfigError(self.lines)


def suggest(key: str, valid: list[str]) -> str | None:
    """Closest valid name: difflib match, else the most similar name sharing a ``_`` token."""
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return close[0]
    tokens = set(key.split("_")) - {""}
    shared = [v for v in valid if tokens & set(v.split("_"))]
    return max(shared, key=lambda v: difflib.SequenceMatcher(None, key, v).ratio(), default=None)


_UNIONS = (Union, types.UnionType)
_SEQUENCES = (list, tuple, Sequence)


def type_name(tp: Any) -> str:
    """Human-readable name of a type annotation."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in _UNIONS:
        return " | ".join(type_name(a) for a in args)
    if tp is type(None):
        return "None"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))


def matches(value: Any, tp: Any) -> bool:
    """Whether ``value`` is acceptable for annotation ``tp`` (int for float, never bool for int)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in (Any, inspect.Parameter.empty) or isinstance(tp, str):
        return True
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in _UNIONS:
        return any(matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if tp in (int, float):
        number = (int, float) if tp is float else int
        return isinstance(value, number) and not isinstance(value, bool)
    if tp in _SEQUENCES or origin in _SEQUENCES:
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(map(matches, value, args))
        return not args or all(matches(v, args[0]) for v in value)
    if tp in (dict, Mapping) or origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False
        return not args or all(
            matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()
        )
    return isinstance(value, origin or tp) if isinstance(origin or tp, type) else True


def coerce(value: Any, tp: Any) -> Any:
    """Converts ints to floats where ``tp`` wants a float; sequences become lists."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is float and type(value) is int:
        return float(value)
    if origin in _UNIONS:
        if type(value) is int and int in args:
            return value
        return next((coerce(value, a) for a in args if matches(value, a)), value)
    if isinstance(value, (list, tuple)):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return [coerce(v, a) for v, a in zip(value, args, strict=True)]
        return [coerce(v, args[0] if args else Any) for v in value]
    if isinstance(value, Mapping) and len(args) == 2:
        return {k: coerce(v, args[1]) for k, v in value.items()}
    return value


def plain(value: Any) -> Any:
    """Recursively converts tuples to lists and mappings to dicts."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def signature_params(fn: Callable, exclude: Collection[str] = ()) -> dict[str, inspect.Parameter]:
    """Parameters of ``fn`` that can be passed by keyword, minus those named in ``exclude``."""
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        sig = inspect.signature(fn)
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {n: p for n, p in sig.parameters.items() if p.kind in kinds and n not in exclude}


def validate_kwargs(
    section: Mapping,
    fn: Callable,
    prefix: str,
    errs: Errors,
    *,
    skip: Sequence[str] = (),
    forbidden: Mapping[str, str] | None = None,
    context: str = "",
) -> dict[str, Any]:
    """Validates ``section`` as keyword arguments of ``fn`` (checked against its annotations).

    ``prefix`` starts the dotted keys in messages; ``skip``: keys the caller handles (offered as
    suggestions); ``forbidden``: parameter -> why it may not be set (left out of the result);
    ``context`` ends "missing required key" messages. Returns every other keyword parameter in
    signature order: the coerced value, None if mistyped, else the default.
    """
    forbidden = forbidden or {}
    params = signature_params(fn, exclude=forbidden)
    given = {}
    for key, value in section.items():
        full = f"{prefix}{key}"
        if key in skip:
            continue
        if key in forbidden:
            errs.add(full, f"{full}: {forbidden[key]}")
        elif key not in params:
            errs.unknown(prefix, key, [*skip, *params])
        elif matches(value, params[key].annotation):
            given[key] = coerce(value, params[key].annotation)
        else:
            errs.wrong_type(full, params[key].annotation, value)
    resolved = {}
    for name, param in params.items():
        if name in given or name in section:
            resolved[name] = given.get(name)
        elif param.default is inspect.Parameter.empty:
            errs.add(f"{prefix}{name}", f"missing required key '{prefix}{name}'{context}")
        else:
            resolved[name] = plain(param.default)
    return resolved


Check = tuple[Callable[[Any], bool], str]
"""A value check: predicate on a type-correct, non-None value, and the message if it fails."""

NONNEG: Check = (lambda v: v >= 0, "must be >= 0")
POSITIVE: Check = (lambda v: v > 0, "must be > 0")
AT_LEAST_1: Check = (lambda v: v >= 1, "must be >= 1")
OPEN_UNIT: Check = (lambda v: 0 < v < 1, "must be in (0, 1)")
FRACTION: Check = (lambda v: 0 <= v < 1, "must be in [0, 1)")
NONEMPTY: Check = (lambda v: bool(v.strip()), "must not be empty")


def build_dataclass(
    cls: type, section: Mapping, name: str, errs: Errors, checks: Mapping[str, Check] | None = None
) -> Any:
    """Validates ``section`` against dataclass ``cls``'s annotations into ``errs``.

    ``name`` prefixes the keys in messages; ``checks`` maps field names to a :data:`Check`.
    Returns the instance, or None if required keys are missing.
    """
    hints = typing.get_type_hints(cls)
    values = {}
    for key, value in section.items():
        full = f"{name}.{key}"
        if key not in hints:
            errs.unknown(f"{name}.", key, list(hints))
        elif not matches(value, hints[key]):
            errs.wrong_type(full, hints[key], value)
        else:
            values[key] = coerce(value, hints[key])
            check = (checks or {}).get(key)
            if check is not None and value is not None and not check[0](value):
                errs.add(full, f"{full}: {check[1]}, got {value!r}")
    for f in dataclasses.fields(cls):
        if f.name not in section and f.default is dataclasses.MISSING:
            errs.add(f"{name}.{f.name}", f"missing required key '{name}.{f.name}'")
    try:
        return cls(**values)
    except TypeError:
        return None
