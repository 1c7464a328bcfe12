"""Config error lines: one per problem, each naming where its key was set and the full dotted key.

Pydantic finds the problems; :meth:`Errors.collect` words them the way a user fixes them (the
closest valid key, the expected type with the value given, the bound broken).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

__all__ = ["ConfigError", "Errors", "bounds", "type_name"]

_BOUND_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_UNIONS = (Union, types.UnionType)
_OPERATORS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


class ConfigError(ValueError):
    """Invalid configuration; ``errors`` holds one line per problem (also joined in the message)."""

    def __init__(self, errors: str | Sequence[str]):
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


class Errors:
    """Collects error lines, each prefixed with the origin of its key.

    ``origins`` maps dotted keys to where they were set (a base file, a command-line override);
    a key is labelled by its own or its nearest labelled parent's origin, else by the origin of
    a key below it (a whole section made by an override), else by ``source``.
    """

    def __init__(self, source: str, origins: Mapping[str, str] | None = None):
        self.source, self.origins, self.lines = source, dict(origins or {}), []

    def add(self, key: str, message: str) -> None:
        parts = key.split(".")
        labels = [self.origins.get(".".join(parts[:i])) for i in range(len(parts), 0, -1)]
        below = (v for k, v in self.origins.items() if k.startswith(key + "."))
        label = next((v for v in labels if v), None) or next(below, self.source)
        self.lines.append(f"{label}: {message}")

    def unknown(self, key: str, valid: Sequence[str], what: str = "key") -> None:
        """Records that dotted ``key`` is unknown, suggesting the closest of ``valid`` names."""
        prefix, _, name = key.rpartition(".")
        close = suggest(name, list(valid))
        hint = f" (did you mean '{prefix + '.' if prefix else ''}{close}'?)" if close else ""
        self.add(key, f"unknown {what} '{key}'{hint}")

    def wrong_type(self, key: str, annotation: Any, value: Any) -> None:
        got = f"{value!r} ({type(value).__name__})"
        self.add(key, f"{key}: expected {type_name(annotation)}, got {got}")

    def collect(
        self, exc: ValidationError, model: type[BaseModel], section: Mapping, prefix: str, note=""
    ) -> None:
        """Words pydantic's errors for ``section`` (validated as ``model``) in the order of its
        keys; ``prefix`` starts the dotted keys and ``note`` ends "missing required key" lines."""

        def position(err: dict) -> list[int]:  # errors follow the order of the keys given
            node, where = section, []
            for part in err["loc"]:
                keys = list(node) if isinstance(node, Mapping) else []
                where.append(keys.index(part) if part in keys else len(keys))
                if part not in keys:
                    break
                node = node[part]
            return where

        reported = set()
        for err in sorted(exc.errors(), key=position):
            path, owner, field = _locate(model, err["loc"])
            key, value = prefix + ".".join(path), _value_at(section, path)
            if key in reported:
                continue  # a union reports each of its members
            reported.add(key)
            if field is None:
                forbidden = getattr(owner, "forbidden", {})
                if path[-1] in forbidden:
                    self.add(key, f"{key}: {forbidden[path[-1]]}")
                else:
                    self.unknown(key, list(owner.model_fields))
            elif err["type"] == "missing":
                self.add(key, f"missing required key '{key}'{note}")
            elif err["type"] == "value_error":
                self.add(key, f"{key}: {err['ctx']['error']}")
            elif err["type"] in _BOUND_ERRORS:
                self.add(key, f"{key}: must be {bounds(field)}, got {value!r}")
            else:
                self.wrong_type(key, field.annotation, value)

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError(self.lines)


def _locate(model: type[BaseModel], loc: tuple) -> tuple[list[str], type[BaseModel], Any]:
    """Key path of a pydantic error location (down to the field at fault, not into its value),
    the model owning the last key, and that key's FieldInfo (None: not a field of it)."""
    path, field = [], None
    for part in loc:
        if field is not None:
            inner = section_type(field.annotation)
            if inner is None:
                break
            model = inner
        field = model.model_fields.get(part) if isinstance(part, str) else None
        path.append(str(part))
        if field is None:
            break
    return path, model, field


def _value_at(section: Any, path: Sequence[str]) -> Any:
    for part in path:
        section = section.get(part) if isinstance(section, Mapping) else None
    return section


def section_type(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested section annotated ``Model`` or ``Model | None``, else None."""
    union = typing.get_origin(annotation) in _UNIONS
    candidates = typing.get_args(annotation) if union else (annotation,)
    return next((t for t in candidates if isinstance(t, type) and issubclass(t, BaseModel)), None)


def bounds(field: FieldInfo) -> str:
    """The range a field's ``ge``/``gt``/``le``/``lt`` constraints allow, e.g. ``in (0, 1)``."""
    found = {op: getattr(m, op) for m in field.metadata for op in _OPERATORS if hasattr(m, op)}
    low = next((op for op in ("ge", "gt") if op in found), None)
    high = next((op for op in ("le", "lt") if op in found), None)
    if low and high:
        brackets = ("[" if low == "ge" else "(", "]" if high == "le" else ")")
        return f"in {brackets[0]}{found[low]}, {found[high]}{brackets[1]}"
    return " and ".join(f"{_OPERATORS[op]} {v}" for op, v in found.items())


def suggest(key: str, valid: list[str]) -> str | None:
    """Closest valid name: difflib match, else the most similar name sharing a ``_`` token."""
    close = difflib.get_close_matches(key, valid, n=1)
    if close:
        return close[0]
    tokens = set(key.split("_")) - {""}
    shared = [v for v in valid if tokens & set(v.split("_"))]
    return max(shared, key=lambda v: difflib.SequenceMatcher(None, key, v).ratio(), default=None)


def type_name(tp: Any) -> str:
    """Human-readable name of a type annotation (nested sections read ``mapping``)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in _UNIONS:
        return " | ".join(type_name(a) for a in args)
    if tp is type(None):
        return "None"
    if section_type(tp) is not None:
        return "mapping"
    if origin is not None:
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return getattr(tp, "__name__", str(tp))
