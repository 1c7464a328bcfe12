"""``python -m eqna.evaluate``: metrics table, JSON and a parity plot for a saved model."""

import json

import ase.io
import numpy as np
import torch

from eqna.data.datasets import read_structures
from eqna.evaluate.cli import main
from eqna.models.io import build_model, save_model
from eqna.nn.neural_atoms import neural_atom_layers

HPARAMS = {
    "elements": [1, 6, 7, 8],
    "atomic_energies": [-10.0, -48.0, -70.0, -102.0],
    "avg_num_neighbors": 7.0,
    "num_channels": 8,
    "radial_hidden": [16],
}


def test_evaluate_writes_metrics_and_a_png(tmp_path, capsys):
    torch.manual_seed(0)
    model = build_model("equivariant", HPARAMS)
    save_model(tmp_path / "model.pt", model, "equivariant", HPARAMS)
    frames = read_structures("embedded:xtb_molecules.xyz")[10:30]
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
    ase.io.write(tmp_path / "data.xyz", read_structures("embedded:xtb_molecules.xyz")[10:12])
    assert main([str(tmp_path / "model.pt"), str(tmp_path / "data.xyz")]) == 2
    assert "element(s) C not known to the model" in capsys.readouterr().err


def test_evaluate_lists_the_learned_gates(tmp_path, capsys):
    hparams = dict(HPARAMS, neural_atoms={"num_neural_atoms": 4})
    torch.manual_seed(0)
    model = build_model("equivariant", hparams)
    with torch.no_grad():
        neural_atom_layers(model)[0].gate_logits.copy_(torch.tensor([0.0, 2.0, -3.0, 1.0]))
    save_model(tmp_path / "model.pt", model, "equivariant", hparams)
    ase.io.write(tmp_path / "data.xyz", read_structures("embedded:xtb_molecules.xyz")[10:12])
    assert main([str(tmp_path / "model.pt"), str(tmp_path / "data.xyz")]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "neural-atom gates" in x)
    assert line.endswith("layer 0, largest first: 0.881 0.731 0.500 0.047")
