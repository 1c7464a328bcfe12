"""Reading config YAML: ``base:`` composition and ``dotted.key=value`` overrides, remembering
where each dotted key was set so that error lines name the file (or override) to fix.

``base: PATH`` (or a list, applied in order) names config(s) the file's own keys are deep-merged
on top of: mappings merge key by key, any other value replaces. PATH is relative to the folder of
the file naming it; a bare name (no ``/``, no ``.yaml``) is ``NAME.yaml`` in that folder, else
a zoo architecture (``eqna.models.zoo.architecture_path``, where that exists).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from eqna.train.errors import ConfigError

__all__ = ["Loader", "apply_overrides", "not_a_config", "read_config", "read_yaml"]

SECTIONS = ("model", "data", "training")
Origins = dict[str, str]
"""Dotted key -> where it was set (a file path or a command-line override)."""


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
        return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)  # a SafeLoader
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None


def not_a_config(raw: Any) -> str:
    """The message for a top level that is not a mapping of sections."""
    return (
        f"top level must be a mapping with sections {', '.join(SECTIONS)}, got {type(raw).__name__}"
    )


def read_config(path: Path) -> tuple[dict, Origins]:
    """The file's mapping merged on top of its bases (no ``base`` key left), and key origins."""
    merged: dict = {}
    origins: Origins = {}
    for layer, label in _layers(path, ()):
        _merge(merged, layer, label, origins, "")
    return merged, origins


def _layers(path: Path, chain: tuple[Path, ...]) -> list[tuple[dict, str]]:
    """(mapping, file) of ``path``'s bases, theirs first, then of ``path`` itself."""
    if path.resolve() in chain:
        cycle = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(f"{path}: base configs form a cycle: {cycle}")
    raw = read_yaml(path)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {not_a_config(raw)}")
    bases = raw.pop("base", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: base: expected a path or a list of paths, got {bases!r}")
    layers = []
    for name in bases:
        layers += _layers(_find_base(name, path), (*chain, path.resolve()))
    return [*layers, (raw, str(path))]


def _find_base(name: str, child: Path) -> Path:
    """The file ``base: name`` in ``child`` names (see the module doc)."""
    bare = "/" not in name and not name.endswith(".yaml")
    beside = Path(os.path.normpath(child.parent / (f"{name}.yaml" if bare else name)))
    if beside.is_file():
        return beside
    zoo = _zoo_path(name) if bare else None
    if zoo is None:
        where = f"{beside} and the zoo" if bare else beside
        raise ConfigError(f"{child}: base config '{name}' not found (looked for {where})")
    return zoo


def _zoo_path(name: str) -> Path | None:
    """The zoo architecture called ``name``, where ``eqna.models.zoo`` exists and has it."""
    try:
        from eqna.models.zoo import architecture_path

        path = Path(architecture_path(name))
    except (ImportError, LookupError, OSError, ValueError):
        return None
    return path if path.is_file() else None


def _merge(into: dict, layer: dict, label: str, origins: Origins, prefix: str) -> None:
    """Deep-merges ``layer`` into ``into`` in place, labelling every key it sets with ``label``."""
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, label, origins, dotted + ".")
            origins[dotted] = label
        else:
            into[key] = value
            _label_all(origins, dotted, value, label)


def _label_all(origins: Origins, dotted: str, value: Any, label: str) -> None:
    """Labels ``dotted`` and every key below it ``label``, forgetting any older labels below."""
    for stale in [k for k in origins if k.startswith(dotted + ".")]:
        del origins[stale]
    origins[dotted] = label
    for key, sub in value.items() if isinstance(value, dict) else ():
        _label_all(origins, f"{dotted}.{key}", sub, label)


def apply_overrides(raw: dict, overrides: Sequence[str], origins: Origins) -> None:
    """Sets each ``dotted.key=value`` (the value parsed as YAML) in ``raw``, labelling the keys
    in ``origins``; raises ConfigError listing every malformed override."""
    errors = []
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
                origins[".".join(parts[: i + 1])] = label
            if not isinstance(node[part], dict):
                where = ".".join(parts[: i + 1])
                errors.append(f"{label}: cannot set '{key.strip()}': '{where}' is not a mapping")
                break
            node = node[part]
        else:
            node[parts[-1]] = value
            _label_all(origins, ".".join(parts), value, label)
    if errors:
        raise ConfigError(errors)
