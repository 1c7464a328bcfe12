"""Committees by folder: ``committee.json`` beside the members' model files names them.

``eqna-train CONFIG --committee N -o OUT`` writes such a folder (members ``member_k/model.pt``),
and ``tools/publish_model.py --committee`` ships one in the zoo (``<name>/committee.json`` with
``member_k.pt``), so ``EqnaCalculator("OUT")`` and ``EqnaCalculator("<zoo name>")`` are both
the committee of its finished members.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eqna.models.zoo import zoo_dirs

MANIFEST = "committee.json"


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The committee manifest in ``folder``, or None when it has none.

    Raises:
        ValueError: the manifest is unreadable or lists no members.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        members = manifest["members"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a committee manifest ({err})") from err
    if not isinstance(members, list) or not members:
        raise ValueError(f"{path}: a committee manifest without members")
    return manifest


def committee_members(folder: str | os.PathLike) -> list[str]:
    """The finished members' model file paths of the committee in ``folder``.

    Raises:
        FileNotFoundError: ``folder`` has no manifest, or no member has finished.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        raise FileNotFoundError(f"{folder}: no {MANIFEST} (not a committee folder)")
    done = [str(folder / m["model"]) for m in manifest["members"] if m.get("done", True)]
    if not done:
        raise FileNotFoundError(f"{folder / MANIFEST}: no member has finished training")
    return done


def resolve_committee(model) -> list[str] | None:
    """Member paths when ``model`` names a committee folder (a path, or a zoo name whose
    zoo folder holds a manifest), else None (a single model)."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    path = Path(model).expanduser()
    if path.is_dir() and (path / MANIFEST).is_file():
        return committee_members(path)
    if path.exists() or os.sep in str(model):
        return None
    for directory in zoo_dirs():
        if (directory / str(model) / MANIFEST).is_file():
            return committee_members(directory / str(model))
    return None
