"""Reading labelled structures with ASE, splitting them, and turning them into graphs."""

import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from eqna.data import keys
from eqna.data.cgcnn_folder import ID_PROP, is_cgcnn_folder, read_cgcnn_folder
from eqna.data.graph import GraphSpec

EMBEDDED_PREFIX = "embedded:"


class DataError(ValueError):
    """Unreadable or inconsistent data; the message names the file, frame and key."""


@dataclass(frozen=True)
class LabelKeys:
    """Where labels live: ``atoms.info``/``atoms.arrays`` keys, else the calculator results."""

    energy: str = "energy"
    forces: str = "forces"
    stress: str = "stress"
    properties: tuple[str, ...] = ()  # ``atoms.info`` keys of per-structure targets, if any


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
    if is_cgcnn_folder(path):
        return path
    if path.is_dir():
        raise DataError(f"{spec}: is a folder without {ID_PROP} (the CGCNN layout needs one)")
    if not path.is_file():
        raise DataError(f"{spec}: file not found (relative paths start at {Path.cwd()})")
    return path


def read_structures(spec: str) -> list[Atoms]:
    """All frames of a file in any format ASE reads (extxyz first), or of a CGCNN folder."""
    path = resolve_path(spec)
    if is_cgcnn_folder(path):
        try:
            return read_cgcnn_folder(path)
        except ValueError as err:
            raise DataError(str(err)) from err
    try:
        frames = _read_all(path)
    except Exception as err:
        raise DataError(f"{path}: cannot be read by ase.io.read ({err})") from err
    if not frames:
        raise DataError(f"{path}: contains no structures")
    return frames


def _read_all(path: Path) -> list[Atoms]:
    """ase.io.read(path, ":"), decompressing .gz/.bz2/.xz files in memory first.

    ASE's extxyz reader seeks back to every frame; in a compressed stream each backward seek
    decompresses from the start, which makes a 10,000-frame .xyz.gz take minutes, not seconds.
    """
    from ase.io.formats import filetype, open_with_compression

    if path.suffix.lower() not in (".gz", ".bz2", ".xz"):
        return ase.io.read(path, index=":")
    with open_with_compression(str(path), "r") as handle:
        text = handle.read()
    return ase.io.read(io.StringIO(text), index=":", format=filetype(str(path)))


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
    if label_keys.properties:
        labels[keys.PROPERTY] = property_labels(atoms, label_keys.properties, where)
        labels[keys.HAS_PROPERTY] = np.asarray(True)
    return labels


def property_labels(atoms: Atoms, names: tuple[str, ...], where: str) -> np.ndarray:
    """[t] float64 per-structure targets from ``atoms.info``; missing or non-numbers are errors."""
    values = []
    for name in names:
        if name not in atoms.info:
            present = ", ".join(sorted(atoms.info)) or "none"
            raise DataError(
                f"{where}no atoms.info[{name!r}] (data.target_key); info keys present: {present}"
            )
        value = atoms.info[name]
        try:
            number = float(np.asarray(value).item())
        except (TypeError, ValueError):
            raise DataError(
                f"{where}atoms.info[{name!r}] = {value!r} is not a number (data.target_key)"
            ) from None
        if not np.isfinite(number):
            raise DataError(f"{where}atoms.info[{name!r}] = {value!r} is not finite")
        values.append(number)
    return np.asarray(values, dtype=np.float64)


def is_isolated_atom(atoms: Atoms) -> bool:
    """An isolated-atom reference frame: tagged config_type IsolatedAtom, or one atom without
    periodicity (a one-atom periodic cell, e.g. bcc Fe, is a crystal, not a reference)."""
    if atoms.info.get("config_type") == "IsolatedAtom":
        return True
    return len(atoms) == 1 and not atoms.pbc.any()


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
        spec: GraphSpec,
        label_keys: LabelKeys,
        name: str,
        frame_ids: list[int] | None = None,
    ):
        self.structures, self.spec = structures, spec
        self.graphs = []
        self.frame_ids = list(range(len(structures)) if frame_ids is None else frame_ids)
        for frame, atoms in zip(self.frame_ids, structures):
            ident = f" (id {atoms.info['id']})" if "id" in atoms.info else ""
            where = f"{name} frame {frame}{ident}: "
            labels = extract_labels(atoms, label_keys, where)
            self.graphs.append(spec.graph(atoms, labels, where))

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.graphs[index]
