"""The CGCNN data layout: a folder of CIF files and ``id_prop.csv`` (``id,value[,value...]``).

Each row names ``<id>.cif`` in the same folder and its target value(s). The structures get
``atoms.info["id"]`` and the targets as ``atoms.info["target"]`` (one value column) or
``"target_0"``, ``"target_1"``, ... (several), so ``data.target_key: target`` trains on them.
CGCNN's ``atom_init.json`` is not needed: eqna has its own atom featurisers.
"""

import csv
from pathlib import Path

import ase.io
from ase import Atoms

ID_PROP = "id_prop.csv"


def is_cgcnn_folder(path: Path) -> bool:
    return path.is_dir() and (path / ID_PROP).is_file()


def _parse_row(row: list[str], where: str) -> tuple[str, list[float]]:
    if len(row) < 2 or not row[0].strip():
        raise ValueError(f"{where}: expected 'id,value[,value...]', got {','.join(row)!r}")
    values = []
    for text in row[1:]:
        try:
            values.append(float(text))
        except ValueError:
            raise ValueError(f"{where}: target {text.strip()!r} is not a number") from None
    return row[0].strip(), values


def read_cgcnn_folder(folder: Path) -> list[Atoms]:
    """All structures listed in ``folder/id_prop.csv``, in file order, with their targets.

    Raises:
        ValueError: a malformed row, a non-number target, rows with different numbers of
            values, or a missing or unreadable CIF (the message names the csv line or the file).
    """
    table = folder / ID_PROP
    with open(table, newline="", encoding="utf-8") as handle:
        rows = [(n, row) for n, row in enumerate(csv.reader(handle), 1) if any(row)]
    structures, width = [], None
    for line, row in rows:
        where = f"{table} line {line}"
        ident, values = _parse_row(row, where)
        if width is not None and len(values) != width:
            raise ValueError(f"{where}: {len(values)} target values, earlier rows have {width}")
        width = len(values)
        cif = folder / f"{ident}.cif"
        if not cif.is_file():
            raise ValueError(f"{where}: structure file {cif} not found")
        try:
            atoms = ase.io.read(cif, format="cif")
        except Exception as err:
            raise ValueError(f"{cif}: cannot be read as CIF ({err})") from err
        atoms.info["id"] = ident
        if width == 1:
            atoms.info["target"] = values[0]
        else:
            atoms.info.update({f"target_{k}": v for k, v in enumerate(values)})
        structures.append(atoms)
    return structures
