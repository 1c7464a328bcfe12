"""PNG plots: evaluate's parity plot and error histograms, learning curves after training."""

import csv
from pathlib import Path

import ase.io
import matplotlib.image
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from helpers import EVALUATE_HPARAMS as HPARAMS
from helpers import tiny_config

from eqna.data.datasets import read_structures
from eqna.evaluate.cli import main, plot_paths
from eqna.evaluate.plotting import learning_curves, read_metrics_csv
from eqna.models.io import build_model, save_model
from eqna.train.config import config_from_dict
from eqna.train.run import train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PANEL_PIXELS = (504, 480)  # 4.2 x 4.0 inches at 120 dpi


def assert_png(path: Path, panels: int) -> None:
    """A real PNG image, one row of ``panels`` panels wide."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 10_000, (path, len(data))
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (PANEL_PIXELS[1], panels * PANEL_PIXELS[0]), (path, image.shape)
    assert image[..., :3].std() > 0.01  # something is drawn


def _diamond_with_stress(seed: int):
    atoms = bulk("C", "diamond", a=3.57)
    atoms.rattle(0.05, seed=seed)
    atoms.calc = EMT()
    labels = {
        "energy": atoms.get_potential_energy(),
        "forces": atoms.get_forces(),
        "stress": atoms.get_stress(),
    }
    atoms.calc = SinglePointCalculator(atoms, **labels)
    return atoms


def test_evaluate_writes_parity_and_error_histograms_with_stress(tmp_path, capsys):
    torch.manual_seed(0)
    save_model(tmp_path / "model.pt", build_model("equivariant", HPARAMS), "equivariant", HPARAMS)
    frames = read_structures("embedded:xtb_molecules.xyz")[10:14]
    frames += [_diamond_with_stress(seed) for seed in range(3)]
    ase.io.write(tmp_path / "data.xyz", frames, format="extxyz")
    plots = tmp_path / "plots"
    assert (
        main([str(tmp_path / "model.pt"), str(tmp_path / "data.xyz"), "--plot", f"{plots}/"]) == 0
    )
    assert "stress" in capsys.readouterr().out
    assert_png(plots / "parity.png", panels=3)  # energy per atom, forces, stress
    assert_png(plots / "errors.png", panels=3)


@pytest.mark.parametrize(
    ("target", "parity", "errors"),
    [
        ("out/p.png", "out/p.png", "out/p_errors.png"),
        ("out/acac", "out/acac_parity.png", "out/acac_errors.png"),
        ("out/", "out/parity.png", "out/errors.png"),
    ],
)
def test_plot_target_names_both_files(tmp_path, target, parity, errors):
    assert plot_paths(f"{tmp_path}/{target}") == (tmp_path / parity, tmp_path / errors)
    assert (tmp_path / "out").is_dir()


def _write_metrics_csv(path: Path, k_eff_layers: int, epochs: int = 4) -> Path:
    """A CSVLogger-like file: sparse rows, lr rows without an epoch, optional K_eff columns."""
    k_eff = (["k_eff"] + [f"k_eff_{i}" for i in range(k_eff_layers)]) if k_eff_layers else []
    columns = ["epoch", "lr-AdamW", "step", "train_loss", "val_energy_per_atom_mae"]
    columns += ["val_forces_mae", "val_loss", *k_eff]
    rows = []
    for epoch in range(epochs):
        end, decay = 10 * epoch + 9, 1 / (epoch + 1)
        rows.append({"lr-AdamW": 0.01 * 0.5**epoch, "step": 10 * epoch})  # no epoch cell
        val = {"val_loss": 5.0, "val_forces_mae": 300.0, "val_energy_per_atom_mae": 40.0}
        rows.append({"epoch": epoch, "step": end, **{k: v * decay for k, v in val.items()}})
        k_eff_values = {name: 16 - epoch for name in k_eff}
        rows.append({"epoch": epoch, "step": end, "train_loss": 6.0 * decay, **k_eff_values})
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.mark.parametrize(("k_eff_layers", "panels"), [(0, 3), (1, 4), (2, 4)])
def test_learning_curves_from_sparse_csv(tmp_path, k_eff_layers, panels):
    csv_file = _write_metrics_csv(tmp_path / "metrics.csv", k_eff_layers)
    assert learning_curves(csv_file, tmp_path / "curves.png") == tmp_path / "curves.png"
    assert_png(tmp_path / "curves.png", panels)


def test_rows_without_epoch_take_the_epoch_of_their_step(tmp_path):
    series = read_metrics_csv(_write_metrics_csv(tmp_path / "metrics.csv", 2))
    epochs, lr = series["lr-AdamW"]
    np.testing.assert_array_equal(epochs, [0, 1, 2, 3])
    np.testing.assert_allclose(lr, [0.01, 0.005, 0.0025, 0.00125])
    assert set(series) >= {"train_loss", "val_loss", "k_eff", "k_eff_1"}
    assert len(series["train_loss"][0]) == 4  # empty cells dropped


def test_learning_curves_skip_what_is_missing(tmp_path):
    csv_file = tmp_path / "metrics.csv"
    csv_file.write_text("epoch,step,train_loss\n0,9,2.0\n1,19,1.0\n")
    assert learning_curves(csv_file, tmp_path / "one.png") is not None
    assert_png(tmp_path / "one.png", panels=1)
    csv_file.write_text("epoch,step,gate_l1\n0,9,2.0\n")
    assert learning_curves(csv_file, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()


def test_training_writes_learning_curves(tmp_path):
    train(config_from_dict(tiny_config(max_epochs=2)), tmp_path / "run")
    assert_png(
        tmp_path / "run" / "logs" / "learning_curves.png", panels=3
    )  # loss, MAE, lr: no K_eff
