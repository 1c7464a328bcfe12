"""eqna against MACE at equal wall-clock training budgets (``tools/bench_accuracy.py``): the
data sets, the MACE settings, the data conversion, the error definitions and the tables. The
subprocesses are :mod:`eqna.benchmarks.accuracy_runs`; MACE is never imported by eqna.

Errors, both codes, on the test file: energy per atom (E_pred - E_ref) / N over every structure,
every force component, every component of the 3x3 stress of the structures labelled with
stress; MAE and RMSE in meV/atom, meV/Å, meV/Å³. eqna's ``test_metrics.json`` has exactly these
definitions (``eqna.tasks.metrics``), so eqna is not evaluated twice; :func:`score` computes them
for MACE's predictions (``tests/benchmarks`` checks the two agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

REPO = Path(__file__).resolve().parents[2]
QUANTITIES = {"energy_per_atom": ("energy", "meV/atom"), "forces": ("forces", "meV/Å"),
              "stress": ("stress", "meV/Å³")}  # fmt: skip


@dataclass(frozen=True)
class Dataset:
    """Files relative to the data folder (``../shared/data``) and the eqna config trained."""

    config: str
    train: str
    test: str
    e0s: str | None = None
    stress: bool = False


DATASETS = {
    "acac": Dataset(
        "configs/acac.yaml",
        "molecules/acac_train_300K.xyz",
        "molecules/acac_test_MD_300K.xyz",
        "molecules/acac_isolated_atoms.xyz",
    ),
    "ethanol": Dataset(
        "configs/ethanol.yaml",
        "molecules/ethanol_train.xyz",
        "molecules/ethanol_test_MD.xyz",
        "molecules/ethanol_isolated_atoms.xyz",
    ),
    "si": Dataset(
        "configs/si.yaml", "periodic/mlearn_Si_train.xyz", "periodic/mlearn_Si_test.xyz", None, True
    ),
}


@dataclass(frozen=True)
class MaceSettings:
    """How MACE is run: its venv, precision, Stage Two start, loss weights, extra flags."""

    venv: Path
    dtype: str = "float64"  # MACE's default for training
    stage_two_fraction: float | None = 0.75  # of the budget; None: no Stage Two
    eqna_weights: bool = False  # copy eqna's loss weights instead of MACE's defaults
    extra: tuple[str, ...] = field(default=())


def to_mace_frames(frames: list[Atoms], isolated: list[Atoms] = ()) -> list[Atoms]:
    """Copies with the labels as MACE's REF_energy / REF_forces / REF_stress (3x3, ASE sign)
    keys, the isolated atoms first with ``config_type=IsolatedAtom`` (MACE's E0s). Isolated
    atoms of elements no frame has are left out: MACE would count them as elements of the
    model and fail (the ethanol set ships an N atom)."""
    present = {int(z) for atoms in frames for z in atoms.numbers}
    isolated = [a for a in isolated if {int(z) for z in a.numbers} <= present]
    out = []
    for atoms, lone in [(a, True) for a in isolated] + [(a, False) for a in frames]:
        copy = atoms.copy()
        results = atoms.calc.results if atoms.calc is not None else {}
        copy.info.pop("energy", None)
        if "energy" in results:
            copy.info["REF_energy"] = float(results["energy"])
        if "forces" in results and not lone:
            copy.arrays["REF_forces"] = np.asarray(results["forces"], dtype=float)
        if "stress" in results:
            copy.info["REF_stress"] = full_stress(results["stress"]).ravel()
        if lone:
            copy.info["config_type"] = "IsolatedAtom"
        out.append(copy)
    return out


def full_stress(stress) -> np.ndarray:
    """[3, 3] from Voigt 6 (xx yy zz yz xz xy), 9 or 3x3 components."""
    stress = np.asarray(stress, dtype=float)
    return voigt_6_to_full_3x3_stress(stress) if stress.size == 6 else stress.reshape(3, 3)


def _residuals(ref: Atoms, pred: Atoms, prefix: str) -> dict[str, np.ndarray]:
    if len(ref) != len(pred) or not np.allclose(ref.positions, pred.positions, atol=1e-6):
        raise ValueError("predictions are not of the reference structures, in the same order")
    labels = ref.calc.results if ref.calc is not None else {}
    out = {}
    if "energy" in labels:
        out["energy_per_atom"] = np.array([pred.info[f"{prefix}energy"] - labels["energy"]])
        out["energy_per_atom"] /= len(ref)
    if "forces" in labels:
        out["forces"] = (pred.arrays[f"{prefix}forces"] - labels["forces"]).ravel()
    if "stress" in labels and f"{prefix}stress" in pred.info:
        out["stress"] = full_stress(pred.info[f"{prefix}stress"]) - full_stress(labels["stress"])
        out["stress"] = out["stress"].ravel()
    return out


def score(reference: list[Atoms], predicted: list[Atoms], prefix: str) -> dict[str, float]:
    """MAE and RMSE (meV units) of the ``prefix`` predictions against the labels of
    ``reference`` (module docstring); keys as eqna's: ``forces_mae``, ``stress_rmse``, ..."""
    if len(reference) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(reference)} structures")
    parts: dict[str, list[np.ndarray]] = {}
    for ref, pred in zip(reference, predicted):
        for name, r in _residuals(ref, pred, prefix).items():
            parts.setdefault(name, []).append(r)
    metrics = {}
    for name, chunks in parts.items():
        r = 1000.0 * np.concatenate(chunks)
        metrics[f"{name}_mae"] = float(np.abs(r).mean())
        metrics[f"{name}_rmse"] = float(np.sqrt((r**2).mean()))
    return metrics


def eqna_overrides(paths: dict[str, Path | None], minutes: float) -> list[str]:
    """``eqna-train`` overrides: the data set's files replace the config's (so any
    ``--eqna-config`` trains on the data MACE gets) and the budget."""
    e0s = paths["e0s"] if paths["e0s"] is not None else "least_squares"  # MACE's "average"
    return [f"data.train={paths['train']}", f"data.test={paths['test']}", f"data.e0s={e0s}",
            f"training.max_time_minutes={minutes:g}"]  # fmt: skip


def mace_args(config, train_xyz: Path, work: Path, stress: bool, has_e0s: bool, mace) -> list[str]:
    """``mace_run_train`` arguments: MACE-small-like (64x0e+64x1o from ``--num_channels 64
    --max_L 1``, correlation 3, two interactions, spherical harmonics to l=3 as MACE's default),
    eqna's cutoff, batch sizes, validation fraction and seed; EMA on, validation every epoch.

    ``ScaleShiftMACE``: energies shifted by the mean per-atom energy left after the E0s and
    scaled by the RMS force, as eqna's ``energy_scale_shift`` does (``--model MACE`` has a zero
    shift and spends a short budget learning the atomization energy, -4.9 eV/atom for acac).
    """
    training, data = config.training, config.data
    args = ["--name", "mace", "--seed", str(training.seed), "--work_dir", str(work),
            "--train_file", str(train_xyz), "--valid_fraction", str(data.valid_fraction),
            "--energy_key", "REF_energy", "--forces_key", "REF_forces",
            "--stress_key", "REF_stress", "--model", "ScaleShiftMACE", "--num_channels", "64",
            "--max_L", "1", "--max_ell", "3", "--correlation", "3", "--num_interactions", "2",
            "--r_max", str(float(config.model.get("r_max", 5.0))),
            "--batch_size", str(data.batch_size), "--valid_batch_size", str(data.valid_batch_size),
            "--max_num_epochs", "1000000", "--eval_interval", "1", "--ema", "--ema_decay", "0.99",
            "--device", "cpu", "--default_dtype", mace.dtype, "--plot", "False",
            "--loss", "stress" if stress else "weighted"]  # fmt: skip
    if not has_e0s:
        args += ["--E0s", "average"]  # least squares, as eqna does without isolated atoms
    if mace.eqna_weights:
        args += ["--energy_weight", str(training.energy_weight),
                 "--forces_weight", str(training.forces_weight)]  # fmt: skip
        args += ["--stress_weight", str(training.stress_weight)] if stress else []
    if mace.stage_two_fraction is not None:  # the wrapper moves the start to the time fraction
        args += ["--stage_two", "--start_stage_two", "999999"]
    return args + list(mace.extra)


ROWS = [
    (f"{label} {s.upper()} ({unit})", f"{q}_{s}")
    for q, (label, unit) in QUANTITIES.items()
    for s in ("mae", "rmse")
]
ROWS += [
    ("epochs", "epochs"),
    ("train structures/s", "structures_per_s"),
    ("train s", "train_seconds"),
]


def ratios(eqna: dict, mace: dict) -> dict[str, float]:
    """eqna / MACE of every number both have (errors: < 1 is eqna better)."""
    return {k: eqna[k] / mace[k] for _, k in ROWS if k in eqna and k in mace and mace[k]}


def format_table(case: dict) -> str:
    """Markdown table of one data set and budget: eqna, MACE and eqna/MACE columns."""
    eqna, mace = case["eqna"], case.get("mace")
    head = f"### {case['dataset']}, {case['minutes']:g} min (test: {case['test']})"
    lines = [head, "", "| | eqna | MACE | eqna/MACE |" if mace else "| | eqna |"]
    lines.append("|---|---|---|---|" if mace else "|---|---|")
    for label, key in ROWS:
        if key not in eqna and not (mace and key in mace):
            continue
        cells = [eqna.get(key)] + ([mace.get(key), case["ratio"].get(key)] if mace else [])
        lines.append(f"| {label} | " + " | ".join(_cell(v) for v in cells) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    return "-" if value is None else f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
