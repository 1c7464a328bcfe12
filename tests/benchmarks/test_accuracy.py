"""tools/bench_accuracy.py's pure parts: MACE's data copies, one error definition for both codes,
the MACE arguments and the tables (the training runs themselves are not run here)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

from eqna.benchmarks.accuracy import (
    MaceSettings,
    format_table,
    full_stress,
    mace_args,
    ratios,
    score,
    to_mace_frames,
)
from eqna.data import keys
from eqna.tasks.metrics import ErrorAccumulator, errors


def labelled(atoms: Atoms, rng, stress: bool = True) -> Atoms:
    results = {"energy": float(rng.normal()), "forces": rng.normal(size=(len(atoms), 3))}
    if stress:
        results["stress"] = rng.normal(size=6) * 0.01  # Voigt, as ASE stores it
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    cells = [bulk("Si", "diamond", a=5.43) * (1, 1, n) for n in (1, 2)]
    molecule = Atoms("CH2O", positions=rng.normal(size=(4, 3)) * 2, cell=[20] * 3)
    return [labelled(c, rng) for c in cells] + [labelled(molecule, rng, stress=False)]


def test_mace_frames_carry_ref_keys_and_isolated_atoms_first(frames, tmp_path):
    isolated = [labelled(Atoms("H"), np.random.default_rng(1), stress=False)]
    write(tmp_path / "train.xyz", to_mace_frames(frames, isolated), format="extxyz")
    back = read(tmp_path / "train.xyz", ":")
    assert back[0].info["config_type"] == "IsolatedAtom"
    assert back[0].info["REF_energy"] == pytest.approx(isolated[0].get_potential_energy())
    assert all(a.calc is None for a in back)  # no plain energy/forces keys for MACE to misread
    for src, dst in zip(frames, back[1:]):
        assert dst.info["REF_energy"] == pytest.approx(src.get_potential_energy())
        np.testing.assert_allclose(dst.arrays["REF_forces"], src.get_forces(), atol=1e-7)
    np.testing.assert_allclose(
        full_stress(back[1].info["REF_stress"]), frames[0].get_stress(voigt=False), atol=1e-7
    )
    assert "REF_stress" not in back[-1].info
    assert frames[0].calc is not None  # the originals are untouched


def test_isolated_atoms_of_absent_elements_are_left_out(frames):
    rng = np.random.default_rng(2)
    isolated = [labelled(Atoms(symbol), rng, stress=False) for symbol in ("H", "N", "O")]
    kept = to_mace_frames(frames, isolated)[:2]
    assert [a.get_chemical_symbols() for a in kept] == [["H"], ["O"]]
    assert all(a.info["config_type"] == "IsolatedAtom" for a in kept)


def test_score_matches_eqna_metrics(frames):
    rng = np.random.default_rng(2)
    predicted, accumulator = [], ErrorAccumulator()
    for atoms in frames:
        pred = atoms.copy()
        pred.info["MACE_energy"] = atoms.get_potential_energy() + rng.normal()
        pred.arrays["MACE_forces"] = atoms.get_forces() + rng.normal(size=(len(atoms), 3))
        has_stress = "stress" in atoms.calc.results
        ref_stress = atoms.get_stress(voigt=False) if has_stress else np.zeros((3, 3))
        pred.info["MACE_stress"] = ref_stress.ravel() + rng.normal(size=9)
        predicted.append(pred)
        t = lambda x: torch.as_tensor(np.asarray(x, dtype=float))[None]  # noqa: E731
        batch = {
            keys.NUM_ATOMS: torch.tensor([len(atoms)]),
            keys.BATCH: torch.zeros(len(atoms), dtype=torch.long),
            keys.ENERGY: t(atoms.get_potential_energy()),
            keys.FORCES: t(atoms.get_forces())[0],
            keys.STRESS: t(ref_stress),
            keys.HAS_ENERGY: torch.tensor([True]),
            keys.HAS_FORCES: torch.tensor([True]),
            keys.HAS_STRESS: torch.tensor([has_stress]),
        }
        out = {
            keys.ENERGY: t(pred.info["MACE_energy"]),
            keys.FORCES: t(pred.arrays["MACE_forces"])[0],
            keys.STRESS: t(pred.info["MACE_stress"]).reshape(1, 3, 3),
        }
        accumulator.update(errors(out, batch))
    ours, eqna = score(frames, predicted, "MACE_"), accumulator.compute()
    assert set(ours) == set(eqna)
    for name, value in eqna.items():
        assert ours[name] == pytest.approx(value, rel=1e-10)
    with pytest.raises(ValueError, match="same order"):
        score(frames, predicted[::-1], "MACE_")


def config(**training):
    defaults = {"seed": 0, "energy_weight": 500.0, "forces_weight": 100.0, "stress_weight": 5e3}
    return SimpleNamespace(
        training=SimpleNamespace(**{**defaults, **training}),
        data=SimpleNamespace(valid_fraction=0.1, batch_size=2, valid_batch_size=8),
        model={"r_max": 4.5},
    )


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_mace_args():
    mace = MaceSettings(venv=None)
    args = mace_args(config(), "t.xyz", "w", stress=False, has_e0s=True, mace=mace)
    assert (flag(args, "--num_channels"), flag(args, "--max_L")) == ("64", "1")
    assert (flag(args, "--r_max"), flag(args, "--batch_size"), flag(args, "--loss")) == (
        "4.5",
        "2",
        "weighted",
    )
    assert "--E0s" not in args and "--energy_weight" not in args and "--ema" in args
    assert "--stage_two" in args and flag(args, "--default_dtype") == "float64"
    si = MaceSettings(None, "float32", None, eqna_weights=True, extra=("--lr", "0.005"))
    args = mace_args(config(), "t.xyz", "w", stress=True, has_e0s=False, mace=si)
    assert (flag(args, "--loss"), flag(args, "--E0s"), flag(args, "--stress_weight")) == (
        "stress",
        "average",
        "5000.0",
    )
    assert "--stage_two" not in args and args[-2:] == ["--lr", "0.005"]


def test_tables_and_ratios():
    eqna = {"forces_mae": 10.0, "forces_rmse": 14.0, "epochs": 30.0, "structures_per_s": 45.0}
    mace = {"forces_mae": 20.0, "forces_rmse": 28.0, "epochs": 10.0, "structures_per_s": 15.0}
    case = {"dataset": "acac", "minutes": 1.5, "test": "acac_test, 650", "eqna": eqna}
    assert "| forces MAE (meV/Å) | 10 |" in format_table(case)
    case.update(mace=mace, ratio=ratios(eqna, mace))
    assert case["ratio"] == {"forces_mae": 0.5, "forces_rmse": 0.5, "epochs": 3.0,
                             "structures_per_s": 3.0}  # fmt: skip
    table = format_table(case)
    assert "### acac, 1.5 min" in table and "| forces MAE (meV/Å) | 10 | 20 | 0.5 |" in table
    assert "stress" not in table
