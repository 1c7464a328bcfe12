"""``eqna-train CONFIG --committee N``: N members of one config, each an ordinary run folder
``OUT/member_<k>`` trained with ``training.seed`` + k, and ``OUT/committee.json`` naming them.

The data split (``data.split_seed``) is the config's for every member, so all of them train and
validate on the same structures and differ by initialisation and batch order (bootstrap
resampling is not offered yet). The manifest is rewritten after each member, so ``--resume``
skips the finished members and continues the interrupted one. The members' ``model.pt`` files
make a committee calculator: ``EqnaCalculator(committee_members("OUT"))``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eqna.train.run import train
from eqna.train.run_folder import RunFolderError

MANIFEST = "committee.json"


def committee_members(out: str | Path) -> list[str]:
    """The finished members' model.pt paths of the committee in ``out``."""
    out = Path(out)
    manifest = _read(out)
    if manifest is None:
        raise FileNotFoundError(f"{out}: no {MANIFEST} (not an eqna-train --committee folder)")
    return [str(out / m["model"]) for m in manifest["members"] if m["done"]]


def train_committee(configs: list, out: Path, resume: bool = False, overwrite: bool = False):
    """Train ``configs`` (one per member, seeds already set) into ``out``; returns the
    manifest. Raises what :func:`eqna.train.run.train` raises, for the member that failed."""
    out = Path(out)
    manifest = _read(out) if resume else None
    if manifest is None and not overwrite and out.is_dir() and any(out.iterdir()):
        raise RunFolderError(
            f"{out}: folder is not empty; continue the committee with --resume, replace it "
            "with --overwrite, or choose another -o"
        )
    if manifest is not None and len(manifest["members"]) != len(configs):
        raise RunFolderError(
            f"{out}: the committee has {len(manifest['members'])} members, not {len(configs)}"
        )
    members = [
        {"model": f"member_{k}/model.pt", "seed": c.training.seed, "done": False, "test": None}
        for k, c in enumerate(configs)
    ]
    if manifest is not None:
        members = manifest["members"]
    out.mkdir(parents=True, exist_ok=True)
    _write(out, {"members": members})  # from now on --resume finds the committee
    for k, (config, member) in enumerate(zip(configs, members)):
        if member["done"]:
            continue
        folder = out / f"member_{k}"
        started = (folder / "checkpoints" / "last.ckpt").is_file()
        member["test"] = train(config, folder, resume=resume and started, overwrite=overwrite)
        member["done"] = True
        _write(out, {"members": members})
    return {"members": members}


def _read(out: Path) -> dict | None:
    path = out / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _write(out: Path, manifest: dict) -> None:
    part = out / f".{MANIFEST}.part"
    part.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(part, out / MANIFEST)
