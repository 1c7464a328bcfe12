"""Stage two in tiny runs bounded by epochs (no wall clock): the switch changes the loss
weights and lr, restarts the EMA and the model selection, and survives --resume."""

import csv
import io
import logging

import pytest
import torch
from helpers import tiny_config

from eqna.data.prepare import prepare_data
from eqna.models.io import load_model
from eqna.train.config import config_from_dict
from eqna.train.module import TrainingModule
from eqna.train.run import build_from_config, train

STAGE_TWO = {
    "max_epochs": 4, "stage_two_fraction": 0.5, "stage_two_energy_weight": 1000.0,
    "stage_two_forces_weight": 100.0, "stage_two_lr": 1e-3, "early_stopping_patience": None,
}  # fmt: skip


def _config(**training):
    raw = tiny_config(**{**STAGE_TWO, **training})
    raw["data"]["max_train_frames"] = 40
    return config_from_dict(raw)


@pytest.fixture
def eqna_log():
    """The eqna logger's lines (the CLI's handler may have stopped propagation)."""
    stream, logger = io.StringIO(), logging.getLogger("eqna")
    handler, level = logging.StreamHandler(stream), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def _validation_rows(out) -> list[dict]:
    with (out / "logs" / "metrics.csv").open(newline="") as handle:
        return [r for r in csv.DictReader(handle) if r.get("val_loss")]


def test_start_stage_two_restarts_the_ema_and_changes_the_weights():
    config = _config()
    data = prepare_data(config.data, config.model["r_max"])
    model, _, _ = build_from_config(config, data)
    module = TrainingModule(model, config.training)
    module.ema.update_parameters(model)  # as after a training step: averaging, not copying
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1)  # the EMA (a copy of the initial weights) now lags behind
    pairs = list(zip(module.ema.module.parameters(), model.parameters(), strict=True))
    assert not all(torch.equal(a, p) for a, p in pairs)
    assert module.loss_weights() == {"energy_weight": 1.0, "forces_weight": 10.0,
                                     "stress_weight": 0.0}  # fmt: skip
    module.start_stage_two()
    assert module.stage == 2
    assert all(torch.equal(a, p) for a, p in pairs)
    assert module.loss_weights() == {"energy_weight": 1000.0, "forces_weight": 100.0,
                                     "stress_weight": 0.0}  # null: unchanged  # fmt: skip
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    fresh = TrainingModule(build_from_config(config, data)[0], config.training)
    fresh.on_load_checkpoint(checkpoint)
    assert fresh.stage == 2 and fresh.loss_weights() == module.loss_weights()


def test_stage_two_switches_once_and_is_what_is_exported(tmp_path, eqna_log, monkeypatch):
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    out = tmp_path / "run"
    train(_config(num_threads=1, scheduler="cosine"), out)
    assert threads == [1]
    with (out / "logs" / "metrics.csv").open(newline="") as handle:
        lrs = [float(r["lr-AdamW"]) for r in csv.DictReader(handle) if r.get("lr-AdamW")]
    assert lrs[-1] == 1e-3 and lrs[1] > 1e-3  # the epoch scheduler paused in stage two
    rows = _validation_rows(out)
    assert [float(r["stage"]) for r in rows] == [1, 1, 2, 2]  # half of 4 epochs
    losses = [float(r["val_loss"]) for r in rows]
    assert min(losses[2:]) > max(losses[:2])  # stage two weighs more: a larger val_loss
    assert eqna_log.getvalue().count("stage two from epoch 3") == 1
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["eqna_stage"] == 2
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-3
    best = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["eqna_stage"] == 2  # the selection restarted with stage two
    _, payload = load_model(out / "model.pt")
    assert payload["extra"]["stage"] == 2


def test_cosine_time_and_stage_two_continue_after_resume(tmp_path, eqna_log):
    out = tmp_path / "run"
    train(_config(max_epochs=2, scheduler="cosine_time"), out)  # stage two in epoch 2
    assert [float(r["stage"]) for r in _validation_rows(out)] == [1, 2]
    train(_config(max_epochs=3, scheduler="cosine_time"), out, resume=True)
    assert [float(r["stage"]) for r in _validation_rows(out)] == [1, 2, 2]
    assert eqna_log.getvalue().count("stage two from") == 1  # not switched a second time
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-3
    assert last["epoch"] == 2
