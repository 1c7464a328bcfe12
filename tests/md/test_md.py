"""``python -m eqna.md``: readable trajectories, explosions stopped early, bad input exits 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import read, write

from eqna.md import energy_drift, main, min_pair_distance, temperature_limit
from eqna.models.io import build_model, save_model

ELEMENTS = [1, 6, 8]  # H, C, O


def save_tiny_model(path, seed: int = 0, **overrides):
    """A small random float64 equivariant model; ``scale`` sets the size of energies/forces."""
    hparams = dict(
        elements=ELEMENTS,
        atomic_energies=[0.0] * len(ELEMENTS),
        avg_num_neighbors=10.0,
        num_channels=8,
        radial_hidden=[16],
        readout_hidden=8,
        r_max=4.0,
        scale=1.0,
        shift=0.0,
    )
    hparams.update(overrides)
    torch.manual_seed(seed)
    save_model(path, build_model("equivariant", hparams).double(), "equivariant", hparams)
    return str(path)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Model files and structures shared by the tests (read only)."""
    root = tmp_path_factory.mktemp("md_inputs")
    paths = {
        "model": save_tiny_model(root / "model.pt"),
        "exploding": save_tiny_model(root / "exploding.pt", scale=1e4),
        "other": save_tiny_model(root / "other.pt", seed=1),
        "water": str(root / "water.xyz"),
        "diamond": str(root / "diamond.xyz"),
        "silicon": str(root / "silicon.xyz"),
    }
    write(paths["water"], molecule("H2O"))
    write(paths["diamond"], bulk("C", "diamond", a=3.57))  # 2 atoms, periodic
    write(paths["silicon"], bulk("Si", "diamond", a=5.43))
    return paths


def run(*argv) -> int:
    return main([*map(str, argv), "--no-progress", "--log-interval", "0"])


def test_nve_run_writes_a_readable_trajectory_and_summary(files, tmp_path, capsys):
    traj, summary_file = tmp_path / "md.traj", tmp_path / "summary.json"
    code = run(
        files["model"], files["water"], "--steps", 20, "--traj-interval", 5,
        "--traj", traj, "--json", summary_file,
    )  # fmt: skip
    assert code == 0
    frames = read(traj, ":")
    assert len(frames) == 5  # steps 0, 5, 10, 15, 20
    assert frames[-1].get_forces().shape == (3, 3)  # calculator results are stored
    summary = json.loads(summary_file.read_text())
    assert summary["steps_done"] == 20 and summary["stable"] and summary["reason"] is None
    assert summary["simulated_ps"] == pytest.approx(0.01)
    assert summary["mean_temperature_K"] > 0
    # Velocity Verlet at 0.5 fs conserves the energy of this smooth tiny model closely.
    assert abs(summary["energy_fluctuation_meV_per_atom"]) < 1.0
    assert np.isfinite(summary["energy_drift_meV_per_atom_per_ps"])
    assert "| stable | yes |" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["md.traj", "summary.json"]  # no .part


def test_an_exploding_model_is_stopped_early(files, tmp_path, capsys):
    traj, summary_file = tmp_path / "md.xyz", tmp_path / "summary.json"
    code = run(
        files["exploding"], files["water"], "--steps", 200, "--timestep", 1.0,
        "--traj", traj, "--json", summary_file,
    )  # fmt: skip
    assert code == 3
    summary = json.loads(summary_file.read_text())
    assert not summary["stable"]
    assert summary["steps_done"] < 200
    assert "temperature" in summary["reason"] or "apart" in summary["reason"]
    assert f"step {summary['steps_done']}:" in summary["reason"]
    assert len(read(traj, ":")) >= 2  # step 0 and the unphysical frame
    assert "| stable | no: step" in capsys.readouterr().out


@pytest.mark.parametrize(
    "structure, extra, message",
    [
        ("missing.xyz", [], "missing.xyz: structure file not found"),
        ("water", ["--ensemble", "npt"], "npt needs a cell periodic"),
        ("silicon", [], "element(s) Si not known to the model"),
        ("water", ["--index", 3], "no frame 3"),
        ("water", ["--traj", "out.pdb"], "use a .traj or .xyz/.extxyz"),
        ("water", ["--timestep", 0], "--timestep must be > 0"),
        ("water", ["--max-force-std", 0.1], "--max-force-std needs a committee"),
        ("water", ["--uncertain-frame", "out.xyz"], "written only with --max-force-std"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(files, tmp_path, capsys, structure, extra, message):
    structure = files.get(structure, str(tmp_path / structure))
    extra = [str(tmp_path / x) if str(x).startswith("out.") else x for x in extra]
    json_file = tmp_path / "summary.json"
    assert run(files["model"], structure, "--json", json_file, *extra) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []


def test_missing_model_exits_2(files, tmp_path, capsys):
    assert run(tmp_path / "nothing.pt", files["water"]) == 2
    assert "nothing.pt" in capsys.readouterr().err


def test_relax_a_periodic_cell_then_run(files, tmp_path, capsys):
    summary_file = tmp_path / "summary.json"
    code = run(
        files["model"], files["diamond"], "--relax", "--relax-steps", 30, "--steps", 5,
        "--temperature", 100, "--json", summary_file,
    )  # fmt: skip
    assert code == 0
    relaxed = json.loads(summary_file.read_text())["relax"]
    assert relaxed["cell"] and relaxed["steps"] <= 30
    assert "relaxed positions and cell" in capsys.readouterr().out


@pytest.mark.parametrize("ensemble", ["langevin", "npt"])
def test_thermostatted_ensembles_run_on_a_crystal(files, tmp_path, ensemble):
    summary_file = tmp_path / "summary.json"
    code = run(
        files["model"], files["diamond"], "--ensemble", ensemble, "--steps", 10,
        "--temperature", 100, "--pressure", 1.0, "--json", summary_file,
    )  # fmt: skip
    assert code == 0
    summary = json.loads(summary_file.read_text())
    assert summary["energy_drift_meV_per_atom_per_ps"] is None  # NVE only
    assert summary["mean_volume_A3_per_atom"] > 0


def test_min_pair_distance_sees_periodic_images():
    atoms = Atoms("H", cell=np.eye(3) * 2.0, pbc=True)
    assert min_pair_distance(atoms, 2.5) == (pytest.approx(2.0), 0, 0)
    pair = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])
    assert min_pair_distance(pair, 1.0)[0] == pytest.approx(0.7)
    assert min_pair_distance(pair, 0.5)[0] == np.inf  # nothing within the cutoff


def test_temperature_limit_and_drift():
    assert temperature_limit(300.0, 10.0, 5000.0) == 3000.0
    assert temperature_limit(1000.0, 10.0, 5000.0) == 5000.0
    assert temperature_limit(0.0, 10.0, 5000.0) == 5000.0
    time_ps = np.linspace(0.0, 2.0, 11)
    drift, fluctuation = energy_drift(time_ps, 1e-3 * (1.5 * time_ps + 7.0))  # eV per atom
    assert drift == pytest.approx(1.5) and fluctuation == pytest.approx(1.5 * time_ps.std())


def test_module_runs_from_the_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "eqna.md", "--help"], capture_output=True, text=True, check=True
    )
    assert "usage: eqna-md" in result.stdout and "--ensemble" in result.stdout


@pytest.mark.parametrize(
    "fault, message",
    [
        ("overlap", "frame -1: atoms 0 (H) and 1 (H) are 0 Å apart, closer than EqnaCalculator"),
        ("nan", "frame -1: 1 atom position(s) are not finite"),
        ("compressed", "frame -1: 2 atoms at a number density of"),
    ],
)
def test_bad_start_geometry_exits_2_with_the_training_checks(
    files, tmp_path, capsys, fault, message
):
    if fault == "compressed":
        atoms = bulk("C", "diamond", a=0.0357)
    else:
        atoms = Atoms("H2O", positions=[[0, 0, 0], [0, 0, 0], [0, 1, 0]])
        if fault == "nan":
            atoms.positions[1] = [np.nan, 0, 0]
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir(), out.mkdir()
    write(inputs / "start.xyz", atoms)
    assert run(files["model"], inputs / "start.xyz", "--json", out / "summary.json") == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert list(out.iterdir()) == []


def test_a_committee_run_records_its_spread_and_stops_where_it_disagrees(files, tmp_path):
    summary_file = tmp_path / "summary.json"
    argv = [files["model"], files["water"], "--committee", files["other"], "--steps", 20,
            "--json", summary_file]  # fmt: skip
    assert run(*argv) == 0
    summary = json.loads(summary_file.read_text())
    assert summary["committee"] == [files["model"], files["other"]]
    spread = summary["max_force_std_eV_A"]
    assert spread > 0
    frame = tmp_path / "uncertain.xyz"
    assert run(*argv, "--max-force-std", spread / 2, "--uncertain-frame", frame) == 3
    stopped = json.loads(summary_file.read_text())
    assert "the committee disagrees on atom" in stopped["reason"]
    assert stopped["steps_done"] < 20
    written = read(frame)
    assert written.arrays["eqna_forces_std"].max() > spread / 2
    assert written.arrays["eqna_forces"].shape == (3, 3)


def test_a_committee_folder_is_a_committee(files, tmp_path):
    folder = tmp_path / "committee"
    folder.mkdir()
    members = [{"model": str(Path(files[name]).resolve()), "done": True}
               for name in ("model", "other")]  # fmt: skip
    (folder / "committee.json").write_text(json.dumps({"members": members}))
    summary_file = tmp_path / "summary.json"
    argv = [folder, files["water"], "--steps", 10, "--json", summary_file]
    assert run(*argv, "--max-force-std", 100.0) == 0  # a committee: the check is accepted
    summary = json.loads(summary_file.read_text())
    assert len(summary["committee"]) == 2 and summary["max_force_std_eV_A"] > 0
