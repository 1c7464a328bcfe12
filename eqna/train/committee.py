"""``eqna-train CONFIG --committee N``: N members of one config, each an ordinary run folder
``OUT/member_<k>`` trained with ``training.seed`` + k, and ``OUT/committee.json`` naming them.

The data split (``data.split_seed``) is the config's for every member, so all of them validate
and test on the same structures; they differ by initialisation and batch order and, with
``--bootstrap``, by their training sets: member k trains on a resample with replacement of the
training split (``data.bootstrap_seed`` = ``training.seed`` + k). The manifest is rewritten
after each member, so ``--resume`` skips the finished members and continues the interrupted
one. The folder is a committee calculator: ``EqnaCalculator("OUT")``
(:mod:`eqna.models.committee`).
"""

from __future__ import annotations

import json
from pathlib import Path

from eqna.evaluate.predictions import write_atomically
from eqna.models.committee import MANIFEST, committee_members, read_manifest
from eqna.train.run import train
from eqna.train.run_folder import RunFolderError

__all__ = ["MANIFEST", "committee_members", "train_committee"]


def train_committee(configs: list, out: Path, resume: bool = False, overwrite: bool = False):
    """Train ``configs`` (one per member, seeds already set) into ``out``; returns the
    manifest. Raises what :func:`eqna.train.run.train` raises, for the member that failed."""
    out = Path(out)
    manifest = read_manifest(out) if resume else None
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
        {
            "model": f"member_{k}/model.pt",
            "seed": c.training.seed,
            "bootstrap_seed": c.data.bootstrap_seed,
            "done": False,
            "test": None,
        }  # fmt: skip
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


def _write(out: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2) + "\n"
    write_atomically(out / MANIFEST, lambda part: part.write_text(text))
