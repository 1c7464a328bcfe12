"""``python -m eqna.evaluate``: metrics table, JSON and a parity plot for a saved model."""

import json

import ase.io
import numpy as np
import pytest
import torch
from ase.build import bulk
from helpers import EVALUATE_HPARAMS as HPARAMS

from eqna.calculators import EqnaCalculator
from eqna.data.datasets import resolve_path
from eqna.evaluate import cli
from eqna.evaluate.cli import main
from eqna.models.io import build_model, save_model
from eqna.nn.neural_atoms import neural_atom_layers


def _molecules(start: int, stop: int) -> list:
    """Frames ``start:stop`` of the shipped xTB molecules, labels in their calculator (reading
    only these frames: the whole file takes a second)."""
    return ase.io.read(resolve_path("embedded:xtb_molecules.xyz"), f"{start}:{stop}")


def test_evaluate_writes_metrics_and_a_png(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("equivariant", HPARAMS)
    save_model(tmp_path / "model.pt", model, "equivariant", HPARAMS)
    frames = _molecules(10, 30)
    ase.io.write(tmp_path / "data.xyz", frames, format="extxyz")
    code = main(
        [
            str(tmp_path / "model.pt"),
            str(tmp_path / "data.xyz"),
            "--json",
            str(tmp_path / "m.json"),
            "--plot",
            str(tmp_path / "p.png"),
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    forces = np.concatenate([a.get_forces() for a in frames])
    assert 0 < metrics["forces_mae"] < 1000 * 2 * np.abs(forces).max()
    assert "energy_per_atom" in capsys.readouterr().out
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_names_an_unknown_element(tmp_path, capsys):
    hparams = dict(HPARAMS, elements=[1, 8], atomic_energies=[-10.0, -102.0])
    save_model(tmp_path / "model.pt", build_model("equivariant", hparams), "equivariant", hparams)
    ase.io.write(tmp_path / "data.xyz", _molecules(10, 12))
    assert main([str(tmp_path / "model.pt"), str(tmp_path / "data.xyz")]) == 2
    assert "element(s) C not known to the model" in capsys.readouterr().err


def test_evaluate_lists_the_learned_gates(tmp_path, capsys):
    hparams = dict(HPARAMS, neural_atoms={"num_neural_atoms": 4})
    torch.manual_seed(0)
    model = build_model("equivariant", hparams)
    with torch.no_grad():
        neural_atom_layers(model)[0].gate_logits.copy_(torch.tensor([0.0, 2.0, -3.0, 1.0]))
    save_model(tmp_path / "model.pt", model, "equivariant", hparams)
    ase.io.write(tmp_path / "data.xyz", _molecules(10, 12))
    assert main([str(tmp_path / "model.pt"), str(tmp_path / "data.xyz")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "neural-atom gates" in x)
    assert line.endswith("layer 0, largest first: 0.881 0.731 0.500 0.047")


def _save_model(tmp_path, config: dict | None = None) -> str:
    torch.manual_seed(0)
    model = build_model("equivariant", HPARAMS)
    save_model(tmp_path / "model.pt", model, "equivariant", HPARAMS, config)
    return str(tmp_path / "model.pt")


def _relabelled(frames, energy_key: str, forces_key: str) -> list:
    """The frames with their labels moved from the calculator to info/arrays ``*_key``."""
    out = []
    for atoms in frames:
        copy = atoms.copy()  # without the calculator that held "energy" and "forces"
        copy.info[energy_key] = atoms.get_potential_energy()
        copy.arrays[forces_key] = atoms.get_forces()
        out.append(copy)
    return out


def test_label_keys_default_to_those_the_model_was_trained_with(tmp_path):
    config = {"data": {"energy_key": "REF_energy", "forces_key": "REF_forces"}}
    model = _save_model(tmp_path, config)
    frames = _molecules(10, 16)
    ase.io.write(tmp_path / "plain.xyz", frames)
    ase.io.write(tmp_path / "mace.xyz", _relabelled(frames, "REF_energy", "REF_forces"))
    plain = ["--energy-key", "energy", "--forces-key", "forces", "--json", str(tmp_path / "p.json")]
    assert main([model, str(tmp_path / "plain.xyz"), *plain]) == 0
    assert main([model, str(tmp_path / "mace.xyz"), "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics == json.loads((tmp_path / "p.json").read_text())
    assert {"energy_per_atom_mae", "forces_mae"} <= set(metrics)


def _diamond(seed: int):
    """A periodic cell without labels: its stress is predicted all the same."""
    atoms = bulk("C", "diamond", a=3.57, cubic=True)
    atoms.rattle(0.05, seed=seed)
    return atoms


def test_write_xyz_adds_the_predictions_beside_the_untouched_labels(tmp_path, capsys):
    model = _save_model(tmp_path)
    frames = _molecules(10, 15)
    frames[1:1] = [_diamond(0)]
    frames.append(_diamond(1))
    for i, atoms in enumerate(frames):
        atoms.info["frame"] = i
    ase.io.write(tmp_path / "data.xyz", frames)
    out = tmp_path / "predicted.xyz"
    args = ["--write-xyz", str(out), "--batch-size", "3", "--dtype", "float64"]
    assert main([model, str(tmp_path / "data.xyz"), *args]) == 0
    assert f"wrote {out}: 7 structures" in capsys.readouterr().out
    written, inputs = ase.io.read(out, ":"), ase.io.read(tmp_path / "data.xyz", ":")
    calc = EqnaCalculator(model, dtype="float64")  # one structure at a time, its own graph
    for back, atoms in zip(written, inputs, strict=True):
        assert back.info["frame"] == atoms.info["frame"]  # input order
        np.testing.assert_allclose(back.positions, atoms.positions)
        if atoms.calc is not None:  # the labels, as read
            assert back.get_potential_energy() == pytest.approx(atoms.get_potential_energy())
            np.testing.assert_allclose(back.get_forces(), atoms.get_forces())
        atoms.calc = calc
        assert back.info["eqna_energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(back.arrays["eqna_forces"], atoms.get_forces(), atol=1e-8)
        assert back.arrays["eqna_energies"].sum() == pytest.approx(back.info["eqna_energy"])
        if atoms.pbc.all():
            assert back.info["eqna_stress"].shape == (6,)  # Voigt, as atoms.get_stress()
            np.testing.assert_allclose(back.info["eqna_stress"], atoms.get_stress(), atol=1e-8)
        else:
            assert "eqna_stress" not in back.info


def test_metrics_per_config_type_in_tables_and_json(tmp_path, capsys):
    model = _save_model(tmp_path)
    frames = _molecules(10, 16)
    for atoms, kind in zip(frames, ["md", "md", "relax", "md", "relax"]):
        atoms.info["config_type"] = kind
    del frames[-1].info["config_type"]
    ase.io.write(tmp_path / "data.xyz", frames)
    ase.io.write(tmp_path / "md.xyz", [a for a in frames if a.info.get("config_type") == "md"])
    assert main([model, str(tmp_path / "data.xyz"), "--json", str(tmp_path / "all.json")]) == 0
    out = capsys.readouterr().out
    for title in ("config_type md (3 structures)", "config_type relax (2 structures)"):
        assert f"{title}\n| quantity | MAE | RMSE | unit |\n|---|---|---|---|\n" in out
    assert "config_type (none) (1 structure)" in out
    groups = json.loads((tmp_path / "all.json").read_text())["by_config_type"]
    assert list(groups) == ["md", "relax", "(none)"]
    assert [groups[g]["num_structures"] for g in groups] == [3, 2, 1]
    assert main([model, str(tmp_path / "md.xyz"), "--json", str(tmp_path / "md.json")]) == 0
    alone = json.loads((tmp_path / "md.json").read_text())  # one config_type: no groups
    assert "by_config_type" not in alone
    assert {k: pytest.approx(v) for k, v in alone.items()} == {
        k: v for k, v in groups["md"].items() if k != "num_structures"
    }


def test_evaluate_selected_rows_of_a_database_as_the_same_file(tmp_path):
    from eqna.data.to_db import main as eqna_db

    model, frames = _save_model(tmp_path), _molecules(10, 16)
    for atoms, kind in zip(frames, ["md", "relax", "md", "md", "relax", "md"]):
        atoms.info["config_type"] = kind
    ase.io.write(tmp_path / "all.xyz", frames)
    ase.io.write(tmp_path / "md.xyz", [a for a in frames if a.info["config_type"] == "md"])
    assert eqna_db([str(tmp_path / "all.xyz"), "-o", str(tmp_path / "all.db")]) == 0
    db_args = [str(tmp_path / "all.db"), "--select", "config_type=md"]
    assert main([model, *db_args, "--json", str(tmp_path / "db.json")]) == 0
    assert main([model, str(tmp_path / "md.xyz"), "--json", str(tmp_path / "xyz.json")]) == 0
    from_db = json.loads((tmp_path / "db.json").read_text())
    assert from_db == json.loads((tmp_path / "xyz.json").read_text())
    assert from_db["forces_mae"] > 0


def _no_model_work(*args, **kwargs):
    raise AssertionError("the model was loaded before the arguments were checked")


@pytest.mark.parametrize("option", ["--json", "--plot", "--write-xyz"])
def test_a_missing_output_folder_is_an_error_before_evaluating(
    tmp_path, capsys, monkeypatch, option
):
    monkeypatch.setattr(cli, "load_model", _no_model_work)
    target = tmp_path / "no_such_folder" / "out.png"
    assert main(["model.pt", "data.xyz", option, str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {option} {target}")
    assert f"folder {target.parent} does not exist" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_device_cuda_without_cuda_is_an_error(capsys, monkeypatch):
    monkeypatch.setattr(cli, "load_model", _no_model_work)
    assert main(["model.pt", "data.xyz", "--device", "cuda"]) == 2
    assert "error: --device cuda: CUDA is not available" in capsys.readouterr().err


def _unlabelled(tmp_path) -> str:
    """Structures whose labels sit under keys nobody asks for."""
    frames = _relabelled(_molecules(10, 13), "dft_e", "dft_f")
    for atoms in frames:
        atoms.info = {"dft_e": atoms.info["dft_e"], "source": "md"}
    ase.io.write(tmp_path / "data.xyz", frames)
    return str(tmp_path / "data.xyz")


def test_unlabelled_data_is_an_error_naming_the_keys(tmp_path, capsys):
    data = _unlabelled(tmp_path)
    assert main([_save_model(tmp_path), data]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: {data}: no labels found for keys energy=energy, forces=forces, stress=stress"
        " (info keys present: dft_e, source; arrays keys present: dft_f);"
        " pass --energy-key/--forces-key/--stress-key"
    )


def test_write_xyz_predicts_unlabelled_data(tmp_path, capsys):
    data, out = _unlabelled(tmp_path), tmp_path / "predicted.xyz"
    assert main([_save_model(tmp_path), data, "--write-xyz", str(out), "--prefix", "p_"]) == 0
    assert f"wrote {out}: 3 structures" in capsys.readouterr().out
    written = ase.io.read(out, ":")
    assert all(np.isfinite(atoms.info["p_energy"]) for atoms in written)
    assert all(atoms.arrays["p_forces"].shape == (len(atoms), 3) for atoms in written)
    assert [atoms.info["dft_e"] for atoms in written] == pytest.approx(
        [atoms.get_potential_energy() for atoms in _molecules(10, 13)]
    )
