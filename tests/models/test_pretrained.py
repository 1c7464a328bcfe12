"""Every shipped pretrained model loads by name and reproduces its model card's check metrics."""

from pathlib import Path

import ase.io
import pytest
import torch

from eqna.calculators import EqnaCalculator
from eqna.data.datasets import GraphDataset, LabelKeys, resolve_path
from eqna.evaluate.evaluation import evaluate_dataset
from eqna.models.zoo import main as zoo_main
from eqna.models.zoo import pretrained_models

MODELS = pretrained_models()
REPO = Path(__file__).resolve().parents[2]


def _check_data(spec: str) -> Path:
    """A card's check data: shipped (``embedded:``), else relative to the repository root,
    where the cards' ``../shared/...`` paths start."""
    if spec.startswith("embedded:"):
        return resolve_path(spec)
    path = Path(spec)
    return path if path.is_absolute() else REPO / path


def test_the_zoo_ships_pretrained_models():
    assert len(MODELS) >= 1, "no zoo/*.pt found"
    for model in MODELS:
        assert model["megabytes"] <= 5.0, model["name"]  # a committee: all members together
        assert model["path"].with_suffix(".md").is_file(), f"{model['name']}: no model card"
        for key in ("training_data", "reference_method", "licence", "train_command", "check"):
            assert model["card"].get(key), f"{model['name']}: card lacks {key}"


@pytest.mark.parametrize("model", MODELS, ids=[m["name"] for m in MODELS])
def test_pretrained_model_reproduces_its_card(model):
    check = model["card"]["check"]
    path = _check_data(check["data"])
    if not path.is_file():
        pytest.skip(f"{path} not present (../shared is needed beside the checkout)")
    frames = [ase.io.read(path, index=i) for i in check["frames"]]
    calc = EqnaCalculator(model["name"])  # by name, through the zoo
    dataset = GraphDataset(frames, calc.model.graph_spec, LabelKeys(), str(path))
    expected_per_member = check.get("members", [check["metrics"]])  # a committee: each member
    assert len(calc.committee) == len(expected_per_member)
    for member, expected_metrics in zip(calc.committee, expected_per_member):
        metrics, _ = evaluate_dataset(member, dataset, batch_size=16)
        for key, expected in expected_metrics.items():
            assert metrics[key] == pytest.approx(expected, rel=1e-4, abs=1e-4), key
    atoms = frames[0].copy()
    atoms.calc = calc
    assert torch.isfinite(torch.as_tensor(atoms.get_forces())).all()
    if len(calc.committee) > 1:
        assert 0 < atoms.calc.results["forces_std"].max() < 1.0  # eV/Å: members agree roughly


def test_zoo_cli_lists_and_shows(capsys):
    assert zoo_main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(m["name"] in out for m in MODELS) and "equivariant_na" in out
    assert zoo_main(["show", MODELS[0]["name"]]) == 0
    assert "Test metrics" in capsys.readouterr().out
    assert zoo_main(["show", "no-such-model"]) == 2
    assert "no pretrained model 'no-such-model'" in capsys.readouterr().err
