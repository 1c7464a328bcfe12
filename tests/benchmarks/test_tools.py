"""The benchmark tools run end to end on tiny budgets and write what they promise."""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from eqna.benchmarks.longrange import local_model_floor
from eqna.data.datasets import resolve_path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def load_tool(name: str):
    spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_longrange_set_matches_its_card():
    train = read(resolve_path("embedded:longrange_train.xyz"), ":")
    test = read(resolve_path("embedded:longrange_test.xyz"), ":")
    sizes = [resolve_path(f"embedded:longrange_{s}.xyz").stat().st_size for s in ("train", "test")]
    assert sum(sizes) <= 5 * 2**20
    card = resolve_path("embedded:longrange.md").read_text()
    assert f"`longrange_train.xyz` ({len(train)} frames)" in card
    assert f"`longrange_test.xyz` ({len(test)} frames)" in card
    frames = train + test
    separations = np.array([f.info["separation"] for f in frames])
    assert separations.min() < 4.0 and separations.max() > 19.0
    tool = load_tool("make_longrange")
    for atoms in frames[:200]:
        name_a, name_b = atoms.info["pair"].split("|")
        n_a = atoms.info["num_atoms_a"]
        assert atoms.info["charge"] == tool.CHARGES[name_a] + tool.CHARGES[name_b]
        assert abs(atoms.info["xtb_charge_a"] - tool.CHARGES[name_a]) <= 0.2
        closest = np.linalg.norm(atoms.positions[:n_a, None] - atoms.positions[None, n_a:], axis=-1)
        assert math.isclose(closest.min(), atoms.info["min_distance"], abs_tol=1e-3)
        assert atoms.get_forces().shape == (len(atoms), 3)
    floor = local_model_floor(frames, tool.MODEL_CUTOFF)
    assert f"{100 * floor['far_fraction']:.1f} %" in card


def test_make_longrange_small_run(tmp_path):
    pytest.importorskip("tblite")
    tool = load_tool("make_longrange")
    assert tool.main(["--frames", "8", "--pool-size", "2", "--out", str(tmp_path)]) == 0
    train = read(tmp_path / "longrange_train.xyz", ":")
    test = read(tmp_path / "longrange_test.xyz", ":")
    assert len(train) + len(test) == 8
    for atoms in train + test:  # E_int + fragment energies reproduce the labelled energy scale
        assert np.isfinite(atoms.info["interaction_energy"])
        assert abs(atoms.info["interaction_energy"]) < 10.0
    assert "Lower bound on the energy MAE" in (tmp_path / "longrange.md").read_text()


def test_local_model_floor_beyond_the_cutoff():
    from ase import Atoms

    def frame(geometries, e_int, closest):
        atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, closest]])
        atoms.info.update(pair="A|B", interaction_energy=e_int, min_distance=closest)
        atoms.info.update(geometry_a=geometries[0], geometry_b=geometries[1])
        return atoms

    # far frames with E_int = 2 for (A0, B0) and (A1, B1) and 0 for the mixed ones: no
    # c_A + c_B fits (rows 1 + 4 - 2 - 3 give 4 = 0), the best misses by 4 eV in total
    frames = [frame((0, 0), 100.0, 2.0)]  # near: ignored
    frames += [frame(g, e, 6.0) for g, e in [((0, 0), 2.0), ((0, 1), 0.0), ((1, 0), 0.0)]]
    frames.append(frame((1, 1), 2.0, 6.0))
    floor = local_model_floor(frames, cutoff=5.0)
    assert floor["far_frames"] == 4 and math.isclose(floor["far_fraction"], 4 / 5)
    assert math.isclose(floor["local_floor_mev_per_atom"], 1000.0 * 4.0 / 2 / 4, rel_tol=1e-6)
    assert math.isclose(floor["far_share_of_abs_e_int"], 4.0 / 104.0)
    # an additive pattern is fitted exactly: the bound is zero
    frames[2].info["interaction_energy"] = frames[3].info["interaction_energy"] = 2.0
    frames[4].info["interaction_energy"] = 2.0
    assert local_model_floor(frames, cutoff=5.0)["local_floor_mev_per_atom"] < 1e-6
    del frames[1].info["geometry_b"]
    with pytest.raises(KeyError, match="geometry"):
        local_model_floor(frames, cutoff=5.0)


def test_compare_pooling_quick(tmp_path):
    tool = load_tool("compare_pooling")
    args = ["--quick", "--datasets", "longrange", "--variants", "backbone", "equivariant+recip"]
    assert tool.main([*args, "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert {(r["variant"], r["seed"]) for r in rows} == {
        (v, s) for v in ("backbone", "equivariant+recip") for s in (0, 1)
    }
    for r in rows:
        assert r["energy_mae"] > 0 and r["forces_mae"] > 0 and r["infer_ms"] > 0
        assert len(r["separation_errors"]) == 8  # --quick keeps 8 test frames
        assert r["budget"] == {"epochs": 1, "max_train_frames": 16, "max_test_frames": 8}
        assert (r["k_eff"] is None) == (r["variant"] == "backbone")
        assert len(r["k_eff_curve"]) == (0 if r["variant"] == "backbone" else 1)
        assert len(r["gate_l1_curve"]) == len(r["k_eff_curve"])
    table = (tmp_path / "table.md").read_text()
    assert "| longrange | backbone |" in table and "by centre-of-mass separation" in table
    assert "beyond 5 Å" in table
    for png in ("bars.png", "k_eff.png", "separation.png"):
        assert (tmp_path / png).stat().st_size > 1000
    backbone = next(x for x in table.splitlines() if x.startswith("| longrange | backbone |"))
    assert backbone.count("+0 %") == 2  # energy and force gains relative to itself
    # a second call finds every run done and trains nothing
    done = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/**/row.json")}
    assert tool.main([*args, "--out", str(tmp_path)]) == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/**/row.json")} == done
    # rows made with other settings are not mixed into a table
    with pytest.raises(SystemExit, match="other settings"):
        tool.main([*args, "--epochs", "2", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="other settings"):
        tool.main([*args, "--gate-penalty", "0.5", "--out", str(tmp_path)])


def test_compare_pooling_gate_penalty_reaches_the_learned_gates_only(tmp_path):
    tool = load_tool("compare_pooling")
    args = ["--quick", "--datasets", "longrange", "--seeds", "0", "--gate-penalty", "0.5"]
    assert tool.main([*args, "--variants", "equivariant", "fixed_k", "--out", str(tmp_path)]) == 0
    rows = {r["variant"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert rows["equivariant"]["gate_penalty"] == 0.5
    assert rows["fixed_k"]["gate_penalty"] == 0.0  # frozen gates are not penalised
    assert rows["equivariant"]["budget"]["gate_penalty"] == 0.5


def test_compare_pooling_gain_is_relative_to_the_backbone_mean():
    gain = load_tool("compare_pooling").gain
    base = [{"forces_mae": 10.0, "stress_mae": None}, {"forces_mae": 30.0, "stress_mae": None}]
    group = [{"forces_mae": 16.0, "stress_mae": None}, {"forces_mae": 20.0, "stress_mae": None}]
    assert gain(group, base, "forces_mae") == "+10 %"
    assert gain(base, group, "forces_mae") == "-11 %"
    assert gain(group, base, "stress_mae") == "–"  # molecules have no stress
    assert gain(group, [], "forces_mae") == "–"  # no backbone rows in this table


def test_compare_pooling_contrast_table_compares_the_poolings_over_seeds():
    from types import SimpleNamespace

    tool = load_tool("compare_pooling")
    forces = {"equivariant": [30.0, 31.0, 32.0], "invariant": [40.0, 41.0, 39.0]}
    rows = [
        {"dataset": "acac", "variant": v, "energy_mae": 1.0 + 0.1 * i, "forces_mae": f}
        for v, values in forces.items()
        for i, f in enumerate(values)
    ]
    args = SimpleNamespace(datasets=["acac"])
    lines = tool.contrast_table(rows, args).splitlines()
    assert len(lines) == 3  # no +recip rows: only the plain contrast is listed
    cells = [c.strip() for c in lines[2].split("|")[1:-1]]
    assert cells[:3] == ["acac", "equivariant vs invariant", "+0 %"]
    assert cells[4] == "-22 %" and float(cells[5]) < 0.01 and float(cells[3]) > 0.99
    assert tool.contrast_table(rows[:1], args) == ""  # one seed: nothing to test


@pytest.mark.skipif(not SHARED.is_dir(), reason="needs ../shared/data")
def test_compare_crystal_features_two_parallel_runs(tmp_path):
    tool = load_tool("compare_crystal_features")
    argv = [
        str(SHARED / "crystals" / "perov5_dev.xyz"),
        "heat_ref",
        "--epochs", "1",
        "--max-train-frames", "60",
        "--atom-features", "onehot",
        "--edge-features", "gaussian",
        "--jobs", "2",
        "--out", str(tmp_path),
    ]  # fmt: skip
    assert tool.main(argv) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in rows] == ["cgcnn", "flowgnn"]
    assert all(r["test_mae"] > 0 and r["epochs"] == 1 and r["threads"] >= 1 for r in rows)
    assert all(
        (tmp_path / "logs" / f"{m}-onehot-gaussian.log").is_file() for m in ("cgcnn", "flowgnn")
    )


def test_committee_uncertainty_reports_every_set(tmp_path):
    import torch
    from ase.io import write
    from helpers import EVALUATE_HPARAMS

    from eqna.models.io import build_model, save_model

    frames = read(resolve_path("embedded:xtb_molecules.xyz"), ":12")
    write(tmp_path / "train.xyz", frames[:8])
    write(tmp_path / "test.xyz", frames[8:])
    members = []
    for seed in range(2):
        torch.manual_seed(seed)
        model = build_model("equivariant", dict(EVALUATE_HPARAMS)).double()
        save_model(tmp_path / f"m{seed}.pt", model, "equivariant", dict(EVALUATE_HPARAMS))
        members.append({"model": f"m{seed}.pt", "seed": seed, "done": True})
    (tmp_path / "committee.json").write_text(json.dumps({"members": members}))
    out = tmp_path / "rows.json"
    load_tool("committee_uncertainty").main(
        [str(tmp_path), "--train", str(tmp_path / "train.xyz"), "--test",
         str(tmp_path / "test.xyz"), "--md-temperatures", "900", "--md-steps", "4",
         "--md-every", "2", "--json", str(out)]
    )  # fmt: skip
    rows = json.loads(out.read_text())
    assert [r["frames"] for r in rows][0] == 4 and rows[-1]["frames"] == 2
    assert -1 <= rows[0]["spearman_per_structure"] <= 1 and rows[0]["mean_std_meV_A"] > 0
    assert "force_rmse_meV_A" not in rows[-1]  # MD frames carry no labels


def test_shipped_classification_sets_match_their_generators(tmp_path):
    """The tetris files are exactly what tools/make_tetris.py writes; the QM9 groups file
    holds 0/1 labels of the ten groups its tool names, and RDKit (where installed) gives the
    same labels from each molecule's SMILES."""
    load_tool("make_tetris").main(["--out", str(tmp_path)])
    for name in ("train", "test"):
        shipped = resolve_path(f"embedded:tetris_{name}.xyz")
        assert (tmp_path / f"tetris_{name}.xyz").read_bytes() == shipped.read_bytes()
    tool = load_tool("make_qm9_groups")
    frames = read(resolve_path("embedded:qm9_groups.xyz"), ":")
    labels = np.array([a.info["groups"] for a in frames])
    assert labels.shape == (1000, len(tool.GROUPS)) and set(np.unique(labels)) == {0, 1}
    assert (labels.mean(0) > 0.02).all()  # every group has positives to score
    if importlib.util.find_spec("rdkit") is None:
        pytest.skip("rdkit is not installed: the labels are not recomputed")
    for atoms in frames[:50]:
        found, _ = tool.group_labels(str(atoms.info["smiles"]))
        np.testing.assert_array_equal(found, atoms.info["groups"])


def test_compare_classifiers_small_run(tmp_path):
    tool = load_tool("compare_classifiers")
    argv = ["tetris_chiral", "--epochs", "1", "--seeds", "0", "--out", str(tmp_path)]
    assert tool.main([*argv, "--variants", "backbone", "fourier"]) == 0
    text = (tmp_path / "table.md").read_text()
    assert "| backbone |" in text and "| fourier |" in text and "per structure" in text
    rows = json.loads((tmp_path / "results.json").read_text())
    assert {r["variant"] for r in rows} == {"backbone", "fourier"}


def test_make_peptides_small_run(tmp_path):
    pytest.importorskip("rdkit")
    pytest.importorskip("peptides")
    tool = load_tool("make_peptides")
    out = tmp_path / "pep.xyz"
    assert tool.main(["--count", "4", "--max-residues", "5", "--heavy-atoms", "-o", str(out)]) == 0
    frames = read(out, ":")
    assert len(frames) == 4 and all("H" not in a.get_chemical_symbols() for a in frames)
    labels = np.array([a.info["labels"] for a in frames])
    assert labels.shape == (4, len(tool.LABELS)) and set(np.unique(labels)) <= {0, 1}
    assert all(5 <= len(a.info["sequence"]) for a in frames)
