"""Fine-tuning: model.init_from starts from a pretrained model, training.freeze keeps parts."""

import ase.build
import ase.io
import pytest
import torch
import yaml
from ase.calculators.emt import EMT
from helpers import tiny_config

from eqna.models.io import load_model
from eqna.train.cli import main


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrained")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config()))
    assert main([str(config), "-o", str(folder / "run")]) == 0
    return folder / "run" / "model.pt"


def _finetune_config(tmp_path, init_from, **model) -> str:
    config = tiny_config(max_epochs=1)
    config["model"].update(init_from=str(init_from), **model)
    config["data"].update(max_train_frames=20)
    path = tmp_path / "finetune.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_finetune_starts_from_the_pretrained_weights_and_freezes(tmp_path, pretrained):
    out = tmp_path / "run"
    config = _finetune_config(tmp_path, pretrained)
    assert (
        main([config, "training.freeze=[embedding.*]", "training.ema_decay=null", "-o", str(out)])
        == 0
    )
    before, _ = load_model(pretrained)
    after, payload = load_model(out / "model.pt")
    old, new = before.state_dict(), after.state_dict()
    torch.testing.assert_close(new["network.embedding.weight"], old["network.embedding.weight"])
    changed = [
        k for k in old if k != "network.embedding.weight" and not torch.equal(old[k], new[k])
    ]
    assert changed  # the rest trained
    for key in ("elements", "avg_num_neighbors", "scale", "shift", "atomic_energies"):
        assert payload["hparams"][key] == load_model(pretrained)[1]["hparams"][key], key


def test_finetune_refuses_another_architecture(tmp_path, pretrained, capsys):
    config = _finetune_config(tmp_path, pretrained, num_channels=16)
    assert main([config, "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "another architecture" in err and "model.num_channels: 8 in" in err
    assert not (tmp_path / "run").exists()


def test_finetune_refuses_elements_the_model_does_not_know(tmp_path, pretrained, capsys):
    frames = []
    for i in range(12):
        atoms = ase.build.bulk("Cu", cubic=True)
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        frames.append(atoms)
    ase.io.write(tmp_path / "cu.xyz", frames)
    config = _finetune_config(tmp_path, pretrained)
    code = main(
        [
            config,
            f"data.train={tmp_path / 'cu.xyz'}",
            "data.e0s=average",
            "-o",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2
    assert "Cu" in capsys.readouterr().err


def test_a_freeze_pattern_that_matches_nothing_is_an_error(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config()))
    assert main([str(path), "training.freeze=[embeding.*]", "-o", str(tmp_path / "run")]) == 2
    assert "'embeding.*' matches no parameter" in capsys.readouterr().err


def test_finetune_from_a_zoo_model_by_name(tmp_path):
    config = tiny_config(max_epochs=1)
    config["model"] = {"init_from": "organic-xtb-equivariant-na"}
    config["data"]["max_train_frames"] = 16
    path = tmp_path / "ft.yaml"
    path.write_text(yaml.safe_dump({"base": "equivariant_na", **config}))
    assert main([str(path), "-o", str(tmp_path / "run")]) == 0
