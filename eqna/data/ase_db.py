"""Structures from an ASE database (SQLite ``.db``, ``ase.db.connect``), with a row selection.

A row becomes an ``Atoms`` exactly as ``ase.io.read`` would give it, plus what a label key may
name: the calculator results stored with the row (energy, forces, stress, ...) stay attached as
a calculator; ``key_value_pairs`` and the entries of ``row.data`` go to ``atoms.info``, except
those ``eqna-db`` wrote from per-atom arrays (listed under ``data["_eqna_arrays"]``), which go
back to ``atoms.arrays``. A label key finds either (info first). ``atoms.info["id"]`` is the
row id, so an error names the row as well as its position in the selection.

Write a database from any ASE-readable file with ``ase convert train.xyz train.db`` (extxyz
info keys become key-value pairs, per-atom arrays go to ``data``), or with ``ase.db.connect``.
"""

from pathlib import Path

import numpy as np
from ase import Atoms

from eqna.data.errors import DataError

SQLITE_HEADER = b"SQLite format 3\x00"
ARRAYS_KEY = "_eqna_arrays"  # row.data entry: which other entries are per-atom arrays


def is_ase_db(path: Path) -> bool:
    """An SQLite file (what ``ase.db.connect`` writes to ``*.db``), by suffix or by header."""
    if not path.is_file():
        return False
    if path.suffix.lower() == ".db":
        return True
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER


def read_ase_db(path: Path, select: str | None = None) -> list[Atoms]:
    """The rows of ``path`` matching ``select`` (ASE's selection syntax, e.g.
    ``"config_type=bulk,natoms<64"``; None: all rows), in id order."""
    frames = list(iter_ase_db(path, select))
    if not frames:
        where = f"{path}" + (f" (data.select {select!r})" if select else "")
        raise DataError(f"{where}: no rows" + (" match the selection" if select else ""))
    return frames


def iter_ase_db(path: Path, select: str | None = None):
    """:func:`read_ase_db` one row at a time (memory bounded), without the empty check."""
    import ase.db

    where = f"{path}" + (f" (data.select {select!r})" if select else "")
    try:
        db = ase.db.connect(str(path), type="db", create_indices=False, use_lock_file=False)
        rows = db.select(select or None, sort="id")
        for row in rows:
            yield _row_atoms(row, path)
    except DataError:
        raise
    except Exception as err:  # sqlite3 and ASE raise many types for a bad file or query
        raise DataError(f"{where}: cannot be read as an ASE database ({err})") from err


def _row_atoms(row, path: Path) -> Atoms:
    atoms = row.toatoms()
    atoms.info.update(row.key_value_pairs)
    data = dict(row.data)
    for key in data.pop(ARRAYS_KEY, []):
        value = np.array(data.pop(key, None))  # writable: rows decode read-only buffers
        if value.ndim == 0 or len(value) != len(atoms):
            raise DataError(
                f"{path} row {row.id}: per-atom array {key!r} has shape {value.shape} for "
                f"{len(atoms)} atoms"
            )
        atoms.arrays[key] = value
    if "id" in data:
        raise DataError(f"{path} row {row.id}: row.data holds a key 'id', which names the row")
    atoms.info.update({k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in data.items()})
    atoms.info["id"] = row.id
    return atoms
