"""Fine-tuning: a new training that starts from the weights of a pretrained eqna model.

``model.init_from`` names the model (zoo name or model.pt). The config must describe the same
architecture; the pretrained element order, neighbour statistics and energy scale are kept
(the weights were learned with them), and so are its E0s unless ``data.e0s`` gives new ones
(isolated atoms, a file or a mapping). ``training.freeze`` keeps matching parameters fixed.
"""

from __future__ import annotations

import fnmatch
import inspect

import torch

from eqna.data.datasets import DataError
from eqna.models.io import load_model
from eqna.models.zoo import resolve_model_path
from eqna.train.schema import plain

KEPT = ("elements", "avg_num_neighbors", "scale", "shift")
"""Data-derived hyperparameters the pretrained weights depend on: never recomputed."""
DERIVED = (*KEPT, "atomic_energies", "target_mean", "target_std", "classes")


def load_pretrained(init_from: str):
    """The pretrained model and its file's payload; a missing model is a DataError."""
    try:
        return load_model(resolve_model_path(init_from))
    except (FileNotFoundError, ValueError) as err:
        raise DataError(f"model.init_from: {err}") from None


def check_same_architecture(init_from: str, payload: dict, family: str, hparams: dict) -> None:
    """The config's architecture must be the pretrained one: every differing key is listed."""
    if payload["family"] != family:
        raise DataError(
            f"model.init_from={init_from} is a {payload['family']!r} model; the config has "
            f"model.family {family!r}"
        )
    saved = _with_defaults(family, payload["hparams"])  # keys added since it was saved
    hparams = _with_defaults(family, hparams)
    differ = [
        f"model.{k}: {saved.get(k)!r} in {init_from}, {hparams.get(k)!r} in the config"
        for k in sorted(set(saved) | set(hparams))
        if k not in DERIVED and saved.get(k) != hparams.get(k)
    ]
    if differ:
        raise DataError(
            f"model.init_from={init_from}: the config describes another architecture "
            "(start the config from the model's own, e.g. base: its zoo architecture):\n  "
            + "\n  ".join(differ)
        )


def _defaults(builder) -> dict:
    params = inspect.signature(builder).parameters.values()
    return {p.name: plain(p.default) for p in params if p.default is not inspect.Parameter.empty}


def _with_defaults(family: str, hparams: dict) -> dict:
    """``hparams`` with every builder default filled in, also inside nested sections
    (``neural_atoms``): a model saved before a key existed has that key's default."""
    from eqna.models.registry import MODEL_BUILDERS, NESTED_SECTIONS

    full = {**_defaults(MODEL_BUILDERS[family]), **hparams}
    for key, module in NESTED_SECTIONS.get(family, {}).items():
        if isinstance(full.get(key), dict):
            nested = {**_defaults(module), **full[key]}
            nested.pop("cutoff", None)  # set by the model, never by the config
            full[key] = nested
    return full


def start_from(model, pretrained, new_e0s: list[float] | None) -> None:
    """Copy the pretrained weights into ``model``; ``new_e0s`` replaces the saved E0s."""
    model.load_state_dict(pretrained.state_dict())
    if new_e0s is not None and model.is_potential:
        shift = model.network.energy_shift
        shift.atomic_energies.copy_(torch.as_tensor(new_e0s, dtype=shift.atomic_energies.dtype))


def freeze(model, patterns: list[str]) -> list[str]:
    """Turn off gradients of the network parameters matching any glob; returns their names.

    Raises:
        DataError: a pattern that matches no parameter (a typo would silently train all).
    """
    names = dict(model.network.named_parameters())
    frozen = set()
    for pattern in patterns:
        matched = fnmatch.filter(names, pattern)
        if not matched:
            close = ", ".join(sorted({n.split(".")[0] + ".*" for n in names}))
            raise DataError(f"training.freeze: {pattern!r} matches no parameter (roots: {close})")
        frozen.update(matched)
    for name in frozen:
        names[name].requires_grad_(False)
    return sorted(frozen)
