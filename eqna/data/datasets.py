"""Reading labelled structures with ASE, splitting them, and turning them into graphs."""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from eqna.data import keys
from eqna.data.graph import atoms_to_graph

EMBEDDED_PREFIX = "embedded:"


class DataError(ValueError):
    """Unreadable or inconsistent data; the message names the file, frame and key."""


@dataclass(frozen=True)
class LabelKeys:
    """Where labels live: ``atoms.info``/``atoms.arrays`` keys, else the calculator results."""

    energy: str = "energy"
    forces: str = "forces"
    stress: str = "stress"


def resolve_path(spec: str) -> Path:
    """A file path, or ``embedded:NAME`` for a data file shipped inside eqna."""
    if spec.startswith(EMBEDDED_PREFIX):
        name = spec[len(EMBEDDED_PREFIX) :]
        path = Path(str(resources.files("eqna.data") / "embedded" / name))
        if not path.is_file():
            shipped = sorted(p.name for p in path.parent.glob("*.xyz"))
            raise DataError(f"{spec}: no embedded data set named {name!r} (shipped: {shipped})")
        return path
    path = Path(spec).expanduser()
    if not path.is_file():
        raise DataError(f"{spec}: file not found (relative paths start at {Path.cwd()})")
    return path


def read_structures(spec: str) -> list[Atoms]:
    """All frames of a file in any format ASE reads (extxyz first)."""
    path = resolve_path(spec)
    try:
        frames = ase.io.read(path, index=":")
    except Exception as err:
        raise DataError(f"{path}: cannot be read by ase.io.read ({err})") from err
    if not frames:
        raise DataError(f"{path}: contains no structures")
    return frames


def _lookup(atoms: Atoms, key: str, calc_name: str):
    if key in atoms.info:
        return atoms.info[key]
    if key in atoms.arrays:
        return atoms.arrays[key]
    calc = atoms.calc
    if calc is not None and key == calc_name and calc_name in getattr(calc, "results", {}):
        return calc.results[calc_name]
    return None


def _as_stress(value, where: str) -> np.ndarray:
    value = np.asarray(value, dtype=np.float64)
    if value.size == 6:
        return voigt_6_to_full_3x3_stress(value.reshape(6))
    if value.size == 9:
        return value.reshape(3, 3)
    raise DataError(f"{where}stress has {value.size} components, expected 6 (Voigt) or 9")


def extract_labels(atoms: Atoms, label_keys: LabelKeys, where: str) -> dict[str, np.ndarray]:
    """Energy [1], forces [n, 3], stress [3, 3] and has_* flags; absent labels are zeros."""
    n = len(atoms)
    found = {
        keys.ENERGY: _lookup(atoms, label_keys.energy, "energy"),
        keys.FORCES: _lookup(atoms, label_keys.forces, "forces"),
        keys.STRESS: _lookup(atoms, label_keys.stress, "stress"),
    }
    labels = {
        keys.ENERGY: np.zeros(()),
        keys.FORCES: np.zeros((n, 3)),
        keys.STRESS: np.zeros((3, 3)),
    }
    try:
        if found[keys.ENERGY] is not None:
            labels[keys.ENERGY] = np.asarray(float(np.asarray(found[keys.ENERGY]).item()))
        if found[keys.FORCES] is not None:
            labels[keys.FORCES] = np.asarray(found[keys.FORCES], dtype=np.float64).reshape(n, 3)
        if found[keys.STRESS] is not None:
            labels[keys.STRESS] = _as_stress(found[keys.STRESS], where)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}malformed label ({err})") from err
    for key, flag in (
        (keys.ENERGY, keys.HAS_ENERGY),
        (keys.FORCES, keys.HAS_FORCES),
        (keys.STRESS, keys.HAS_STRESS),
    ):
        present = found[key] is not None
        if present and not np.isfinite(labels[key]).all():
            raise DataError(f"{where}{key} label is not finite")
        labels[flag] = np.asarray(present)
    labels[keys.WEIGHT] = np.asarray(1.0)
    return labels


def is_isolated_atom(atoms: Atoms) -> bool:
    """An isolated-atom reference frame (one atom, or tagged config_type IsolatedAtom)."""
    return len(atoms) == 1 or atoms.info.get("config_type") == "IsolatedAtom"


def split_indices(n: int, valid_fraction: float, test_fraction: float, seed: int):
    """Random train / valid / test index arrays, reproducible from ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    n_valid, n_test = int(round(valid_fraction * n)), int(round(test_fraction * n))
    if n - n_valid - n_test < 1:
        raise DataError(f"split of {n} structures leaves no training data")
    return order[n_valid + n_test :], order[:n_valid], order[n_valid : n_valid + n_test]


class GraphDataset(torch.utils.data.Dataset):
    """Structures with labels as precomputed graph dicts (float64; cast when batched)."""

    def __init__(
        self,
        structures: list[Atoms],
        cutoff: float,
        elements: list[int],
        label_keys: LabelKeys,
        name: str,
        frame_ids: list[int] | None = None,
    ):
        self.structures = structures
        self.graphs = []
        self.frame_ids = list(range(len(structures)) if frame_ids is None else frame_ids)
        for frame, atoms in zip(self.frame_ids, structures):
            where = f"{name} frame {frame}: "
            labels = extract_labels(atoms, label_keys, where)
            self.graphs.append(atoms_to_graph(atoms, cutoff, elements, labels, where))

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.graphs[index]
