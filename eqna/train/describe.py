"""Plain-text reference of every config key, generated from the schema (``--list-keys``)."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Mapping

from pydantic import BaseModel

from eqna.train.config import DataConfig, TrainingConfig, model_section
from eqna.train.errors import bounds, section_type, type_name

__all__ = ["describe_keys"]


def describe_keys(builders: Mapping[str, Callable] | None = None) -> str:
    """Every key of the data and training sections and of each model family's section: dotted
    name, type, default (and range), then its meaning on an indented line.

    Args:
        builders: Model family -> builder; defaults to ``eqna.models.registry.MODEL_BUILDERS``.
    """
    if builders is None:
        from eqna.models.registry import MODEL_BUILDERS as builders
    lines = ["data section:", *_keys(DataConfig, "data."), "", "training section:"]
    lines += _keys(TrainingConfig, "training.")
    for family, builder in builders.items():
        lines += ["", f"model section, family {family!r}:"]
        lines += _keys(model_section(family, builder), "model.")
    return "\n".join(lines) + "\n"


def _keys(section: type[BaseModel], prefix: str) -> list[str]:
    lines = []
    for name, field in section.model_fields.items():
        default = "required" if field.is_required() else f"default {json.dumps(field.default)}"
        limits = f", {bounds(field)}" if bounds(field) else ""
        lines.append(f"  {prefix}{name}: {type_name(field.annotation)}, {default}{limits}")
        if field.description:
            lines.append(
                textwrap.fill(
                    field.description, 100, initial_indent=" " * 6, subsequent_indent=" " * 6
                )
            )
        nested = section_type(field.annotation)
        if nested is not None:
            lines += _keys(nested, f"{prefix}{name}.")
    return lines
