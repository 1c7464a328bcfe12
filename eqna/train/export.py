"""From a training to a deployable model.pt: the best weights, checked finite, with the
test-set table; and any checkpoint turned into a model.pt afterwards."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from eqna.evaluate.evaluation import evaluate_dataset
from eqna.models.io import build_model, save_model
from eqna.nn.neural_atoms import k_eff_summary
from eqna.tasks.metrics import format_table

LOG = logging.getLogger("eqna")


def eval_state(state_dict: dict) -> dict:
    """The weights validation and export use: the EMA copy when the run kept one."""
    ema = {k[len("ema.module.") :]: v for k, v in state_dict.items() if k.startswith("ema.module.")}
    if ema:
        return ema
    return {k[len("model.") :]: v for k, v in state_dict.items() if k.startswith("model.")}


def check_finite(model: torch.nn.Module, where: str) -> None:
    """A model with a non-finite weight is never written."""
    bad = [
        n
        for n, p in model.state_dict().items()
        if p.is_floating_point() and not bool(torch.isfinite(p).all())
    ]
    if bad:
        raise ValueError(f"{where}: non-finite weights in {', '.join(bad[:5])}; not exported")


def export_checkpoint(checkpoint: Path, target: Path, extra: dict | None = None):
    """Rebuild the model of a training checkpoint and write it as ``target`` (a model.pt).

    Raises:
        ValueError: not an eqna training checkpoint, or non-finite weights.
    """
    try:
        payload = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{checkpoint}: not a readable checkpoint ({err})") from err
    meta = payload.get("eqna") if isinstance(payload, dict) else None
    if not meta:
        raise ValueError(f"{checkpoint}: not an eqna training checkpoint (no eqna metadata)")
    model = build_model(meta["family"], meta["hparams"])
    state = eval_state(payload["state_dict"])
    model.to(next(v for v in state.values() if v.is_floating_point()).dtype)
    model.load_state_dict(state)
    check_finite(model, str(checkpoint))
    info = {"epochs": payload.get("epoch"), "train_seconds": payload.get("eqna_train_seconds")}
    info.update(from_checkpoint=str(checkpoint), **k_eff_summary(model), **(extra or {}))
    save_model(target, model.eval(), meta["family"], meta["hparams"], meta["config"], info)
    return model.eval(), info


def report_test(model, data, config, out: Path, fit: dict, dtype) -> dict:
    """Evaluate ``model`` on the test split (else validation), print and write the table."""
    name = "test" if data.test is not None else "validation"
    dataset = data.test if data.test is not None else data.valid
    metrics, _ = evaluate_dataset(model, dataset, config.data.valid_batch_size, dtype)
    metrics.update(k_eff_summary(model))  # the neural atoms the exported model computes with
    note = f", INTERRUPTED ({fit['interrupted']})" if fit.get("interrupted") else ""
    table = format_table(
        metrics,
        f"{name} set ({len(dataset)} structures), model {out}/model.pt,"
        f" trained {fit['train_seconds'] / 60:.1f} min{note}",
    )
    (out / "test_metrics.md").write_text(table + "\n")
    summary = {"split": name, **metrics, **{k: fit.get(k) for k in ("train_seconds", "epochs")}}
    if fit.get("interrupted"):
        summary["interrupted"] = fit["interrupted"]
    (out / "test_metrics.json").write_text(json.dumps(summary, indent=2))
    LOG.info("wrote %s", out / "model.pt")
    print(table)
    return metrics
