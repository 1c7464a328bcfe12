"""The training recipe's parts without training: the budget schedule, the Huber loss and the
config keys (ranges, cross-checks, round trip, --list-keys)."""

import math

import pytest
import torch
import yaml
from helpers import tiny_config

from eqna.data import keys
from eqna.tasks.loss import huber, weighted_loss
from eqna.train.config import ConfigError, config_from_dict
from eqna.train.describe import describe_keys
from eqna.train.recipe import budget_progress, recipe_lr, warmup_cosine
from eqna.train.run_folder import check_resumable, config_differences
from eqna.train.sections import TrainingConfig


def test_warmup_cosine_values():
    lr = [warmup_cosine(p, 1e-2, 1e-6, 1e-4, warmup=0.1) for p in (0, 0.05, 0.1, 0.55, 1, 1.5)]
    assert lr[0] == 1e-6  # warm-up starts at its start value
    assert lr[1] == pytest.approx((1e-6 + 1e-2) / 2)  # linear
    assert lr[2] == pytest.approx(1e-2)  # peak at the end of the warm-up
    assert lr[3] == pytest.approx((1e-2 + 1e-4) / 2)  # cosine half way
    assert lr[4] == lr[5] == 1e-4  # floor at the end and after it
    quarter = warmup_cosine(0.325, 1.0, 0.0, 0.0, warmup=0.1)
    assert quarter == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine(0.0, 1.0, 0.0, 0.0, warmup=0.0) == 1.0  # no warm-up


def test_recipe_lr_anneals_into_stage_two_and_stays_there():
    cfg = TrainingConfig(
        scheduler="cosine_time", lr=1e-2, min_lr=1e-6, warmup_fraction=0.1,
        stage_two_fraction=0.2, stage_two_lr=1e-3,
    )  # fmt: skip
    assert recipe_lr(0.0, cfg) == 1e-6
    assert recipe_lr(0.45, cfg) == pytest.approx((1e-2 + 1e-3) / 2)  # [0.1, 0.8] half way
    assert recipe_lr(0.8 - 1e-7, cfg) == pytest.approx(1e-3, rel=1e-6)  # continuous at the switch
    assert recipe_lr(0.9, cfg, stage=2) == recipe_lr(0.3, cfg, stage=2) == 1e-3
    one_stage = cfg.model_copy(update={"stage_two_fraction": None})
    assert recipe_lr(1.0, one_stage) == 1e-6  # min_lr at the end of the budget
    assert recipe_lr(0.45, one_stage) > recipe_lr(0.45, cfg)
    plateau = cfg.model_copy(update={"scheduler": "plateau"})
    assert recipe_lr(0.5, plateau) is None  # the scheduler's own lr in stage one
    assert recipe_lr(0.5, plateau, stage=2) == 1e-3


def test_budget_progress_is_the_first_budget_to_run_out():
    assert budget_progress(0.0, None, 25, 100.0) == 0.25  # epochs only
    assert budget_progress(30.0, 1.0, 10, 100.0) == 0.5  # time ahead of steps
    assert budget_progress(30.0, 1.0, 90, 100.0) == 0.9  # steps ahead of time
    assert budget_progress(120.0, 1.0, 0, float("inf")) == 1.0  # clipped


def _batch(residual_energy: float, residual_force: float, weights=(1.0, 1.0)):
    """Two one-atom structures with equal residuals on every component."""
    zeros = torch.zeros(2, dtype=torch.float64)
    batch = {
        keys.NUM_ATOMS: torch.tensor([1, 1]), keys.BATCH: torch.tensor([0, 1]),
        keys.ENERGY: zeros, keys.FORCES: torch.zeros(2, 3, dtype=torch.float64),
        keys.HAS_ENERGY: torch.ones(2), keys.HAS_FORCES: torch.ones(2),
        keys.WEIGHT: torch.tensor(weights, dtype=torch.float64),
    }  # fmt: skip
    pred = {keys.ENERGY: zeros + residual_energy, keys.FORCES: torch.full((2, 3), residual_force)}
    pred[keys.FORCES] = pred[keys.FORCES].double()
    return pred, batch


def test_huber_is_the_square_below_delta_and_linear_above():
    x = torch.tensor([-0.5, 0.003, 0.01, 0.02, 1.0, 3.0], dtype=torch.float64)
    h = huber(x, 0.01)
    assert torch.equal(h[1:3], x[1:3].pow(2))
    assert torch.allclose(h[[0, 3, 4, 5]], 0.02 * x[[0, 3, 4, 5]].abs() - 1e-4)
    assert float(h[5] - h[4]) == pytest.approx(0.02 * 2.0)  # slope 2 delta
    pred, batch = _batch(0.004, -0.002)
    mse, parts = weighted_loss(pred, batch, 1.0, 10.0, 0.0)
    hub, hub_parts = weighted_loss(pred, batch, 1.0, 10.0, 0.0, huber_delta=0.01)
    assert torch.equal(mse, hub)  # small residuals: exactly the mse
    pred, batch = _batch(2.0, 1.0)
    mse, _ = weighted_loss(pred, batch, 1.0, 1.0, 0.0)
    hub, parts = weighted_loss(pred, batch, 1.0, 1.0, 0.0, huber_delta=0.01)
    assert float(mse) == pytest.approx(5.0)
    assert float(parts["energy"]) == pytest.approx(0.02 * 2.0 - 1e-4)
    assert float(parts["forces"]) == pytest.approx(0.02 * 1.0 - 1e-4)


def test_huber_keeps_per_structure_weights():
    pred, batch = _batch(2.0, 1.0, weights=(3.0, 0.0))
    pred[keys.ENERGY] = pred[keys.ENERGY] * torch.tensor([1.0, 100.0], dtype=torch.float64)
    _, parts = weighted_loss(pred, batch, 1.0, 1.0, 0.0, huber_delta=0.5)
    assert float(parts["energy"]) == pytest.approx(1.0 * 2.0 - 0.25)  # weight-0 outlier dropped


def test_default_training_loss_is_the_mse():
    config = config_from_dict(tiny_config())
    assert config.training.loss == "mse"
    from eqna.tasks.tasks import PotentialTask, make_task

    model = type("M", (), {"is_potential": True})()
    assert make_task(model, config.training) == PotentialTask(1.0, 10.0, 0.0, None)
    huber_cfg = config.training.model_copy(update={"loss": "huber"})
    assert make_task(model, huber_cfg).huber_delta == 0.01


@pytest.mark.parametrize(
    ("training", "message"),
    [
        ({"stage_two_fraction": 1.0}, "training.stage_two_fraction: must be in (0, 1), got 1.0"),
        ({"stage_two_fraction": 0.2, "ema_decay": None}, "needs training.ema_decay"),
        (
            {"stage_two_fraction": 0.2, "lr": 1e-4},
            "training.stage_two_lr: must be at most training.lr (0.0001)",
        ),
        (
            {"scheduler": "cosine_time", "warmup_fraction": 0.5, "stage_two_fraction": 0.5},
            "training.warmup_fraction + training.stage_two_fraction must be < 1",
        ),
        ({"warmup_fraction": 1.0}, "training.warmup_fraction: must be in [0, 1)"),
        ({"loss": "l1"}, "training.loss: expected one of"),
        ({"loss_huber_delta": 0}, "training.loss_huber_delta: must be > 0"),
        ({"num_threads": 0}, "training.num_threads: must be >= 1"),
        ({"stage_two_forces_weight": -1.0}, "training.stage_two_forces_weight: must be >= 0"),
    ],
)
def test_recipe_keys_are_checked(training, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(tiny_config(**training))
    assert message in str(err.value)


def test_a_property_model_refuses_the_potential_loss():
    raw = tiny_config(loss="huber")
    raw["model"]["output"] = "property"
    raw["data"]["target_key"] = "gap"
    with pytest.raises(ConfigError, match="training.property_loss"):
        config_from_dict(raw)


def test_recipe_keys_round_trip_and_are_listed():
    recipe = {
        "scheduler": "cosine_time", "warmup_fraction": 0.05, "stage_two_fraction": 0.2,
        "stage_two_energy_weight": 1000.0, "stage_two_forces_weight": 10.0,
        "stage_two_stress_weight": 1.0, "stage_two_lr": 1e-4, "loss": "huber",
        "loss_huber_delta": 0.02, "num_threads": 2,
    }  # fmt: skip
    config = config_from_dict(tiny_config(**recipe))
    d = config.to_dict()
    assert {k: d["training"][k] for k in recipe} == recipe
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(d)))
    assert again.to_dict() == d
    text = describe_keys()
    for key in recipe:
        assert f"  training.{key}: " in text
    assert "cosine_time" in text


def test_resume_accepts_other_threads_and_a_config_older_than_the_recipe(tmp_path):
    d = config_from_dict(tiny_config()).to_dict()
    threads = {**d, "training": {**d["training"], "num_threads": 2}}
    assert config_differences(d, threads) == []
    old = {**d, "training": {k: v for k, v in d["training"].items() if "stage_two" not in k}}
    for key in ("loss", "loss_huber_delta", "warmup_fraction", "num_threads"):
        del old["training"][key]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert check_resumable(tmp_path, d) == tmp_path / "checkpoints" / "last.ckpt"


def test_a_stage_two_weight_needs_its_label_in_the_data():
    from eqna.data.errors import DataError
    from eqna.data.prepare import prepare_data

    config = config_from_dict(tiny_config(stage_two_fraction=0.5, stage_two_stress_weight=1.0))
    with pytest.raises(DataError, match="training.stage_two_stress_weight is 1 but no frame has"):
        prepare_data(config.data, 4.0, training=config.training)
