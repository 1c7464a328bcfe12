"""A packed store of labelled structures on disk (HDF5, through h5py): what ``eqna-pack`` writes
and lazy datasets read, one structure at a time, in any process.

A store is a folder holding ``structures.h5`` and ``manifest.json``. The HDF5 file keeps every
structure's atoms and the labels read by the pack's label keys, as flat columns with offsets:

    per atom       numbers [n] int16, positions [n, 3], forces [n, 3]
    per structure  atom_ptr [s + 1], cell [s, 3, 3], pbc [s, 3], energy [s], stress [s, 3, 3],
                   weight [s], property [s, t], has_energy / has_forces / has_stress [s],
                   isolated [s], config_type [s], source [s], frame [s]
    per edge       edge_index [e, 2] int32 (within the structure), edge_shift [e, 3] int32 and
                   edge_ptr [s + 1]; only when packed with a cutoff

Columns, not one record per structure: a structure is a handful of contiguous slices, the file
is compact without pickles, and ``h5dump`` or any HDF5 reader can inspect it. Reading a
structure gives back an ``Atoms`` whose labels sit under the pack's keys, so every consumer
extracts exactly the labels it would have read from the source file.

``manifest.json`` is written last, after the HDF5 file is complete and renamed into place: a
folder without it is a pack that did not finish, and is refused as such.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from eqna.data.errors import DataError

FORMAT, FORMAT_VERSION = "eqna-store", 1
STRUCTURES, MANIFEST = "structures.h5", "manifest.json"

__all__ = ["Store", "StoreKeys", "is_store", "FORMAT", "MANIFEST", "STRUCTURES"]


@dataclass(frozen=True)
class StoreKeys:
    """The label keys a store was packed with (the ``data`` section's keys of that name)."""

    energy_key: str = "energy"
    forces_key: str = "forces"
    stress_key: str = "stress"
    virial_key: str | None = None
    weight_key: str | None = None
    target_key: tuple[str, ...] = ()

    def mismatches(self, other: StoreKeys) -> list[str]:
        """How a config's keys (``other``) differ from the store's; targets may be a subset."""
        mine, theirs = asdict(self), asdict(other)
        differ = [k for k in mine if k != "target_key" and mine[k] != theirs[k]]
        if not set(other.target_key) <= set(self.target_key):
            differ.append("target_key")
        return [f"data.{k}: store {mine[k]!r}, config {theirs[k]!r}" for k in differ]


def h5py_module():
    """h5py, or an error that says how to install it (the ``store`` extra)."""
    try:
        import h5py
    except ImportError:
        raise DataError(
            'stores need h5py, which is not installed: pip install "eqna[store]"'
        ) from None
    return h5py


def is_store(path: Path) -> bool:
    """A folder that holds (or was to hold) a store: its HDF5 file, manifest or a partial pack."""
    return path.is_dir() and any(
        (path / name).exists() for name in (STRUCTURES, MANIFEST, f".{STRUCTURES}.partial")
    )


def read_manifest(path: Path) -> dict:
    """The manifest of a complete store; a clear error for anything else."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise DataError(
            f"{path}: an incomplete store (no {MANIFEST}: the pack was killed or failed); run "
            "eqna-pack again"
        )
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{manifest}: unreadable ({err})") from err
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{path}: not an {FORMAT} version {FORMAT_VERSION} store (manifest says format "
            f"{meta.get('format')!r} version {meta.get('format_version')!r})"
        )
    if not (path / STRUCTURES).is_file():
        raise DataError(f"{path}: {STRUCTURES} is missing beside {MANIFEST}")
    return meta


# bytes of chunk cache per column: above a chunk of any column (the largest, 64k strings or
# 4096 rows, is about 1 MB), far below h5py's 8 MB default, which random access over a large
# store fills for every column (+100 MB per process at a million structures) for few hits
CHUNK_CACHE = 2 << 20


class Store:
    """Read access to a packed store; safe to share with DataLoader worker processes (each
    process opens the file itself on first use)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        keys = self.manifest["label_keys"]
        self.keys = StoreKeys(**{**keys, "target_key": tuple(keys["target_key"])})
        self.cutoff = self.manifest["cutoff"]
        self.sources = self.manifest["sources"]
        self._file, self._pid = None, None
        self._index = None  # small per-structure columns, read once per process

    def __len__(self) -> int:
        return int(self.manifest["num_structures"])

    def __getstate__(self) -> dict:  # an open HDF5 handle does not cross a fork or a pickle
        return {**self.__dict__, "_file": None, "_pid": None}

    def _h5(self) -> dict:
        """This process's open columns by name (looking a column up by name costs more than
        reading a structure's slice of it, so each is looked up once)."""
        if self._file is None or self._pid != os.getpid():
            handle = h5py_module().File(self.path / STRUCTURES, "r", rdcc_nbytes=CHUNK_CACHE)
            self._file = {name: handle[name] for name in handle}
            self._pid = os.getpid()
        return self._file

    def index(self) -> dict[str, np.ndarray]:
        """The per-structure columns every access needs (offsets, flags, origins)."""
        if self._index is None:
            h5 = self._h5()
            names = ["atom_ptr", "isolated", "source", "frame", "has_energy", "has_forces"]
            names += ["has_stress"] + (["edge_ptr"] if "edge_ptr" in h5 else [])
            self._index = {name: h5[name][()] for name in names}
        return self._index

    def column(self, name: str):
        """This process's HDF5 dataset ``name`` (slice it to read)."""
        return self._h5()[name]

    def where(self, i: int) -> str:
        index = self.index()
        return f"{self.sources[index['source'][i]]} frame {index['frame'][i]}"

    def atoms(self, i: int) -> Atoms:
        """Structure ``i`` with its labels under the store's keys (as in the source file)."""
        h5, index = self._h5(), self.index()
        a, b = index["atom_ptr"][i], index["atom_ptr"][i + 1]
        atoms = Atoms(numbers=h5["numbers"][a:b], positions=h5["positions"][a:b],
                      cell=h5["cell"][i], pbc=h5["pbc"][i])  # fmt: skip
        keys = self.keys
        if index["has_energy"][i]:
            atoms.info[keys.energy_key] = float(h5["energy"][i])
        if index["has_forces"][i]:
            atoms.arrays[keys.forces_key] = h5["forces"][a:b]
        if index["has_stress"][i]:
            atoms.info[keys.stress_key] = h5["stress"][i]
        if keys.weight_key is not None:
            atoms.info[keys.weight_key] = float(h5["weight"][i])
        if keys.target_key:
            for name, value in zip(keys.target_key, h5["property"][i]):
                atoms.info[name] = float(value)
        config_type = h5["config_type"][i].decode()
        if config_type:
            atoms.info["config_type"] = config_type
        return atoms

    def neighbours(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Structure ``i``'s stored edges ([2, e] int64, shifts [e, 3] float64), if packed."""
        index = self.index()
        if "edge_ptr" not in index:
            return None
        h5 = self._h5()
        a, b = index["edge_ptr"][i], index["edge_ptr"][i + 1]
        return h5["edge_index"][a:b].T.astype(np.int64), h5["edge_shift"][a:b].astype(np.float64)
