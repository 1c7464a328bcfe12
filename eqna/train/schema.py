"""Pydantic models of config sections, and of a function's keyword arguments from its signature.

Type rules of every section: ints are accepted where a float is expected (and become floats),
bools are never ints, strings are never numbers, ``null`` only where the annotation allows None,
unknown keys are errors (pydantic's strict mode with ``extra="forbid"``).
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, create_model

__all__ = ["Section", "docstring_args", "kwargs_model", "plain"]

_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class Section(BaseModel):
    """Base of every config section; ``forbidden``: keys that may not be set -> why."""

    model_config = ConfigDict(strict=True, extra="forbid", arbitrary_types_allowed=True)
    forbidden: ClassVar[Mapping[str, str]] = {}


def plain(value: Any) -> Any:
    """Recursively converts tuples to lists and mappings to dicts (YAML-serialisable)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def docstring_args(fn: Callable) -> dict[str, str]:
    """Parameter -> text of its entry in ``fn``'s Google-style ``Args:`` section (``a, b: ...``
    entries document both names)."""
    fn = getattr(fn, "func", fn)  # a functools.partial documents its function
    section = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)*)", inspect.getdoc(fn) or "", re.M)
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in section[1].splitlines() if section else ():
        entry = re.match(r" {4}(\w+(?:, \w+)*):\s*(.*)", line)
        if entry:
            names = entry[1].split(", ")
            docs.update(dict.fromkeys(names, entry[2]))
        elif line.strip():
            docs.update({name: f"{docs[name]} {line.strip()}".strip() for name in names})
    return docs


def _annotation(param: inspect.Parameter) -> Any:
    """A parameter's annotation as a config type: unannotated or unresolved -> Any, variadic
    tuples -> lists (YAML has no tuples)."""
    tp = param.annotation
    if tp is inspect.Parameter.empty or isinstance(tp, str):
        return Any
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return list[args[0]]
    return tp


@functools.cache
def kwargs_model(
    fn: Callable,
    forbidden: tuple[tuple[str, str], ...] = (),
    nested: tuple[tuple[str, type[Section]], ...] = (),
    leading: tuple[tuple[str, Any, Any, str], ...] = (),
) -> type[Section]:
    """The keyword parameters of ``fn`` as a :class:`Section` (defaults as lists, docs from
    its ``Args:`` section).

    Args:
        fn: A function or class; its keyword parameters become fields.
        forbidden: (parameter, why it may not be set) pairs, left out of the fields.
        nested: (parameter, section) pairs: a mapping validated as that section, or None.
        leading: (name, type, default, description) of fields put before the parameters.
    """
    try:
        signature = inspect.signature(fn, eval_str=True)
    except (NameError, TypeError, SyntaxError):
        signature = inspect.signature(fn)
    docs, sections = docstring_args(fn), dict(nested)
    fields = {name: (tp, Field(default, description=doc)) for name, tp, default, doc in leading}
    for name, param in signature.parameters.items():
        if param.kind not in _KEYWORD or name in dict(forbidden):
            continue
        tp = sections[name] | None if name in sections else _annotation(param)
        default = ... if param.default is inspect.Parameter.empty else plain(param.default)
        fields[name] = (tp, Field(default, description=docs.get(name, "")))
    model = create_model(getattr(fn, "__name__", "section"), __base__=Section, **fields)
    model.forbidden = dict(forbidden)
    return model
