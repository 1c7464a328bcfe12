"""Deployable model files: config + state_dict + metadata, loaded with ``weights_only=True``."""

import inspect
import os
from pathlib import Path

import e3nn
import torch
from torch import nn

from eqna.models.interface import AtomisticModel
from eqna.models.registry import MODEL_BUILDERS

FORMAT = "eqna-model"
FORMAT_VERSION = 2  # 2: state_dict keys under ``network.`` (AtomisticModel); 1 is migrated
UNITS = {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom", "stress": "eV/Angstrom^3"}


def _versions() -> dict[str, str]:
    import ase
    import e3nn

    from eqna import __version__

    return {
        "eqna": __version__,
        "torch": str(torch.__version__),
        "e3nn": str(e3nn.__version__),
        "ase": str(ase.__version__),
    }


def build_model(family: str, hparams: dict) -> AtomisticModel:
    """The network of ``family`` built from ``hparams``, wrapped in :class:`AtomisticModel`.

    e3nn's TorchScript code generation is switched off while building: the script profiler
    re-specialises for every new number of edges, which costs seconds per step early in
    training and in MD, for no speed gain on the CPU (measured with tools/bench_md.py).
    """
    if family not in MODEL_BUILDERS:
        raise KeyError(f"unknown model family {family!r}; known: {sorted(MODEL_BUILDERS)}")
    defaults = e3nn.get_optimization_defaults()
    e3nn.set_optimization_defaults(jit_script_fx=False)
    try:
        network = MODEL_BUILDERS[family](**hparams)
    finally:
        e3nn.set_optimization_defaults(**defaults)
    return AtomisticModel(network)


def builder_hparams(family: str, values: dict) -> dict:
    """The entries of ``values`` that ``family``'s builder accepts (data-derived statistics are
    computed for every model; a property model takes no E0s, a potential no target std)."""
    params = inspect.signature(MODEL_BUILDERS[family]).parameters
    return {k: v for k, v in values.items() if k in params}


def save_model(
    path: str | Path,
    model: nn.Module,
    family: str,
    hparams: dict,
    config: dict | None = None,
    extra: dict | None = None,
) -> None:
    """Write ``model`` so that :func:`load_model` rebuilds it from ``family`` and ``hparams``."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family,
        "hparams": hparams,
        "state_dict": state,
        "config": config or {},
        "dtype": str(next(v for v in state.values() if v.is_floating_point()).dtype)[6:],
        "units": UNITS,
        "versions": _versions(),
        "extra": extra or {},
    }
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # never a half-written model file


def _migrate_state(state: dict, version: int) -> dict:
    """State-dict keys of an older format, renamed to today's ``network.*``."""
    if version >= 2:
        return state
    # format 1: potentials were ForceStressOutput(energy_model), property models bare
    old = "energy_model."
    return {f"network.{k[len(old) :] if k.startswith(old) else k}": v for k, v in state.items()}


def read_model_file(path: str | Path) -> dict:
    """The payload of an eqna model file (``weights_only``: no code is unpickled).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an eqna model file, or one written by a newer eqna.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file, not an eqna model")
    if path.suffix == ".pt2":
        raise ValueError(
            f"{path}: an exported model (eqna-export) runs in the calculator, eqna-md and "
            "LAMMPS only; evaluation and training need the model.pt it was exported from"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign files: one clear message
        reason = str(err).split(". ")[0]  # torch appends paragraphs of advice
        raise ValueError(f"{path}: not a readable eqna model file ({reason})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an eqna model file")
    if payload.get("format_version", 1) > FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format {payload['format_version']} is newer than this eqna reads "
            f"({FORMAT_VERSION}); upgrade eqna"
        )
    return payload


def load_model(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[AtomisticModel, dict]:
    """Rebuild a saved model in eval mode; returns (model, payload without the state_dict)."""
    payload = read_model_file(path)
    model = build_model(payload["family"], payload["hparams"])
    saved_dtype = getattr(torch, payload["dtype"])
    model.to(dtype or saved_dtype)
    state = _migrate_state(payload.pop("state_dict"), payload.get("format_version", 1))
    model.load_state_dict(state)
    return model.to(device).eval(), payload


def set_requires_grad(model: nn.Module, flag: bool) -> nn.Module:
    """Freeze or unfreeze all parameters (inference needs no parameter gradients)."""
    for p in model.parameters():
        p.requires_grad_(flag)
    return model
