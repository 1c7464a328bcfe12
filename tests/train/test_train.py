"""Training from a config: the loss goes down, the output folder is complete, bad configs fail."""

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_config

from eqna.data.prepare import make_loader, prepare_data
from eqna.models.io import load_model
from eqna.tasks.loss import weighted_loss
from eqna.train.cli import main
from eqna.train.config import config_from_dict
from eqna.train.run import build_from_config

ZOO = Path(str(resources.files("eqna.zoo")))  # the shipped zoo, checkout or wheel


def test_a_few_steps_lower_the_loss():
    config = config_from_dict(tiny_config())
    data = prepare_data(config.data, config.model["r_max"])
    torch.manual_seed(1)
    model, _, _ = build_from_config(config, data)
    model.train()
    batch = next(iter(make_loader(data.train, 16, torch.float32, shuffle=False)))
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        loss, _ = weighted_loss(model(batch, compute_stress=False), batch, 1.0, 10.0, 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_cli_writes_a_complete_run_folder(tmp_path, capsys):
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(tiny_config()))
    out = tmp_path / "run"
    assert main([str(config_file), "training.lr=0.002", "-o", str(out)]) == 0
    for name in (
        "config.yaml",
        "model.pt",
        "test_metrics.md",
        "test_metrics.json",
        "logs/metrics.csv",
        "checkpoints/last.ckpt",
        "checkpoints/best.ckpt",
    ):
        assert (out / name).is_file(), name
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["training"]["lr"] == 0.002
    assert resolved["model"]["num_layers"] == 2  # defaults filled in
    metrics = json.loads((out / "test_metrics.json").read_text())
    assert metrics["forces_mae"] > 0
    assert "forces" in capsys.readouterr().out  # the table is printed
    model, payload = load_model(out / "model.pt")
    assert payload["hparams"]["elements"] == [1, 6, 7, 8]
    assert payload["units"]["energy"] == "eV"
    assert len(payload["hparams"]["atomic_energies"]) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"training": {"max_epoch": 3}}, "did you mean 'training.max_epochs'"),
        ({"training": {"max_epochs": "ten"}}, "training.max_epochs: expected int"),
        ({"data": {"train": "no/such/file.xyz"}}, "no/such/file.xyz: file not found"),
        ({"model": {"num_chanels": 8}}, "did you mean 'model.num_channels'"),
    ],
)
def test_bad_config_is_one_clear_error_and_writes_nothing(tmp_path, capsys, change, message):
    raw = tiny_config()
    for section, values in change.items():
        raw[section].update(values)
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    assert main([str(config_file), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err
    if "file not found" not in message:
        assert str(config_file) in err
    assert not out.exists()


def test_missing_config_file_exits_nonzero(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "eqna.train",
            str(tmp_path / "nope.yaml"),
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "nope.yaml" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("path", sorted(ZOO.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_zoo_config_is_valid(path):
    from eqna.train.config import load_config

    config = load_config(path)
    assert config.model["family"]
