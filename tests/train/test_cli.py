"""The command lines: console scripts, --version, --list-keys, refusals before writing, logs."""

import importlib.metadata
import json
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_config

from eqna.data.pack import main as pack_main
from eqna.data.skipatom import main as skipatom_main
from eqna.data.to_db import main as db_main
from eqna.evaluate.cli import main as evaluate_main
from eqna.md.cli import main as md_main
from eqna.models.zoo import main as zoo_main
from eqna.train.cli import main as train_main

COMMANDS = {
    "eqna-train": train_main,
    "eqna-evaluate": evaluate_main,
    "eqna-md": md_main,
    "eqna-zoo": zoo_main,
    "eqna-skipatom": skipatom_main,
    "eqna-db": db_main,
    "eqna-pack": pack_main,
}


def test_console_scripts_are_installed():
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    for name, main in COMMANDS.items():
        assert scripts.get(name) == f"{main.__module__}:main", name


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_version(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        COMMANDS[name](["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("eqna ")


def test_help_shows_examples_and_list_keys(capsys):
    with pytest.raises(SystemExit):
        train_main(["--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "eqna-train equivariant_na" in text and "--list-keys" in text


def test_list_keys_is_generated_from_the_schema(capsys):
    assert train_main(["--list-keys"]) == 0
    text = capsys.readouterr().out
    for key in ("data.train: str, required", "training.lr: float, default 0.005, > 0"):
        assert key in text
    assert "model.neural_atoms.pooling" in text and "model.coupling_hidden" in text


def _config(tmp_path, **training):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(**training)))
    return str(path)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda"])
def test_a_gpu_run_without_a_gpu_is_refused_before_writing(tmp_path, capsys, accelerator):
    out = tmp_path / "run"
    code = train_main([_config(tmp_path), f"training.accelerator={accelerator}", "-o", str(out)])
    assert code == 2 and not out.exists()
    assert "training.accelerator is 'gpu' but torch sees no CUDA device" in capsys.readouterr().err


def test_a_zoo_name_is_a_config(capsys):
    assert train_main(["no_such_architecture"]) == 2
    assert "no zoo architecture 'no_such_architecture' (known: " in capsys.readouterr().err


def test_one_plain_line_per_epoch_and_tensorboard(tmp_path, capsys):
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    config = _config(tmp_path, max_epochs=2, progress_bar=True, loggers=["csv", "tensorboard"])
    assert train_main([config, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"], err
    assert "val_forces_mae" in lines[-1] and "\r" not in err  # no progress bar off a terminal
    assert "litlogger" not in err.lower() and "LeafSpec" not in err
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "logs" / "metrics.csv").is_file()


def _mace_style_file(tmp_path, singular: bool = False) -> str:
    """Molecules labelled REF_energy / REF_forces (MACE's names, not eqna's defaults)."""
    from ase.build import molecule
    from ase.io import write

    frames = []
    for i, name in enumerate(["H2O", "CH4", "CO2", "CH3OH", "H2", "C2H6"] * 2):
        atoms = molecule(name)
        atoms.info["REF_energy"] = -1.0 - i
        atoms.arrays["REF_forces"] = 0.1 * atoms.positions
        frames.append(atoms)
    if singular:
        frames[4].cell, frames[4].pbc = [[3, 0, 0], [3, 0, 0], [0, 0, 3]], True
    path = tmp_path / "mace.xyz"
    write(path, frames, format="extxyz")
    return str(path)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ([], "mace.xyz: training.energy_weight is 1 but no frame has energy under"),
        (
            ["data.energy_key=REF_energy", "data.forces_key=REF_forces", "data.e0s={Hx: 1}"],
            "data.e0s: 'Hx' is not an element symbol",
        ),
        (
            ["data.energy_key=REF_energy", "data.forces_key=REF_forces"],
            "mace.xyz frame 4: the periodic lattice vectors are (nearly) linearly dependent",
        ),
    ],
)
def test_bad_training_data_exits_2_before_writing(tmp_path, capsys, overrides, message):
    out = tmp_path / "run"
    data = _mace_style_file(tmp_path, singular=bool(overrides) and "e0s" not in overrides[-1])
    code = train_main([_config(tmp_path), f"data.train={data}", *overrides, "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists(), err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.r_max=0", "model.r_max: must be > 0, got 0"),
        ("model.num_channels=0", "model.num_channels: must be >= 1, got 0"),
        ("model.neural_atoms_after=[5]", "model.neural_atoms_after: block indices [5]"),
    ],
)
def test_bad_model_keys_are_one_line_errors(tmp_path, capsys, override, message):
    config = tiny_config()
    config["model"]["neural_atoms"] = {}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert train_main([str(path), override, "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"], ids=["empty", "truncated"])
def test_a_broken_model_file_is_one_line_everywhere(tmp_path, capsys, monkeypatch, content):
    from ase.build import molecule
    from ase.io import write

    from eqna.calculators import EqnaCalculator

    bad = tmp_path / "model.pt"
    bad.write_bytes(content)
    write(tmp_path / "h2o.xyz", molecule("H2O"))
    for main in (evaluate_main, md_main):
        assert main([str(bad), str(tmp_path / "h2o.xyz")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and str(bad) in err and "Traceback" not in err
    with pytest.raises(ValueError, match="model.pt: (empty file|not a readable eqna model)"):
        EqnaCalculator(str(bad))
    monkeypatch.setenv("EQNA_ZOO", str(tmp_path))
    assert zoo_main(["list"]) == 2
    assert str(bad) in capsys.readouterr().err


def test_empty_structures_are_refused(tmp_path):
    from ase import Atoms

    from eqna.calculators import EqnaCalculator
    from eqna.data.datasets import DataError

    atoms = Atoms()
    atoms.calc = EqnaCalculator("acac-equivariant-na")
    with pytest.raises(DataError, match="no atoms"):
        atoms.get_potential_energy()


def test_lightning_note_at_every_checkpoint_is_dropped(caplog):
    import logging

    from eqna.cli import configure_logging

    configure_logging()
    name = "pytorch_lightning.trainer.connectors.checkpoint_connector"
    with caplog.at_level(logging.INFO, logger=name):
        logging.getLogger(name).info("`weights_only` was not set, defaulting to `False`.")
        logging.getLogger(name).info("Restored all states from the checkpoint")
    assert [r.getMessage() for r in caplog.records] == ["Restored all states from the checkpoint"]


def test_a_committee_trains_members_with_their_own_seeds(tmp_path, capsys):
    from ase.build import molecule

    from eqna.calculators import EqnaCalculator
    from eqna.train.committee import MANIFEST, committee_members

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(max_epochs=1)))
    out = tmp_path / "committee"
    assert train_main([str(path), "-o", str(out), "--committee", "2"]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert [m["seed"] for m in manifest["members"]] == [1, 2]  # tiny_config's seed, + k
    assert all(m["done"] and m["test"]["forces_mae"] > 0 for m in manifest["members"])
    members = committee_members(out)
    assert members == [str(out / "member_0" / "model.pt"), str(out / "member_1" / "model.pt")]
    atoms = molecule("CH3OH")
    atoms.calc = EqnaCalculator(members)
    atoms.get_forces()
    assert atoms.calc.results["energy_std"] > 0  # different seeds, different models
    by_folder = EqnaCalculator(out)  # the folder is the committee
    assert len(by_folder.committee) == 2
    assert by_folder.get_forces(atoms) == pytest.approx(atoms.get_forces(), abs=1e-12)
    before = [Path(m).stat().st_mtime_ns for m in members]
    assert train_main([str(path), "-o", str(out), "--committee", "2", "--resume"]) == 0
    assert [Path(m).stat().st_mtime_ns for m in members] == before  # finished: not retrained
    assert train_main([str(path), "-o", str(out), "--committee", "2"]) == 2  # not empty
    assert "continue the committee with --resume" in capsys.readouterr().err
    assert train_main([str(path), "-o", str(tmp_path / "one"), "--committee", "1"]) == 2


def test_a_killed_committee_resumes_its_unfinished_member(tmp_path, monkeypatch):
    from eqna.train import committee

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(max_epochs=1)))
    out, calls = tmp_path / "committee", []
    real_train = committee.train

    def killed_at_the_second(config, folder, resume=False, overwrite=False):
        calls.append((folder.name, resume))
        if folder.name == "member_1" and len(calls) == 2:
            raise KeyboardInterrupt  # the process dies while member 1 trains
        return real_train(config, folder, resume=resume, overwrite=overwrite)

    monkeypatch.setattr(committee, "train", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        train_main([str(path), "-o", str(out), "--committee", "2"])
    assert train_main([str(path), "-o", str(out), "--committee", "2", "--resume"]) == 0
    assert [name for name, _ in calls] == ["member_0", "member_1", "member_1"]  # 0 not again
    assert len(committee.committee_members(out)) == 2


def test_a_bootstrap_committee_resamples_each_members_training_set(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(max_epochs=1)))
    out = tmp_path / "committee"
    assert train_main([str(path), "-o", str(out), "--committee", "2", "--bootstrap"]) == 0
    manifest = json.loads((out / "committee.json").read_text())
    assert [m["bootstrap_seed"] for m in manifest["members"]] == [1, 2]
    for k in (0, 1):
        config = yaml.safe_load((out / f"member_{k}" / "config.yaml").read_text())
        assert config["data"]["bootstrap_seed"] == 1 + k
    assert train_main([str(path), "-o", str(tmp_path / "x"), "--bootstrap"]) == 2
    assert "add --committee N" in capsys.readouterr().err
