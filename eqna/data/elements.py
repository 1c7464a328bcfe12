"""CGCNN-style element property features ("atom_init") from the shipped element table.

The table ``eqna/data/embedded/element_properties.csv`` (Z = 1..100, generated from mendeleev by
``tools/make_element_table.py``; units and provenance in ``element_properties.md``) is read
here without mendeleev. Units of the raw columns: atomic_mass Da, covalent_radius Å (Pyykkö
single bond), ionisation_energy and electron_affinity eV, atomic_volume cm³/mol, polarizability
bohr³; the rest are dimensionless.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from ase.data import chemical_symbols

__all__ = [
    "BLOCKS",
    "PROPERTY_COLUMNS",
    "UnknownElementPropertiesError",
    "element_property_table",
    "table_path",
]

TABLE_NAME = "element_properties.csv"
PROPERTY_COLUMNS = (
    "group",
    "period",
    "mendeleev_number",
    "atomic_mass",
    "electronegativity",
    "covalent_radius",
    "ionisation_energy",
    "electron_affinity",
    "valence_electrons",
    "atomic_volume",
    "polarizability",
)
BLOCKS = ("s", "p", "d", "f")


class UnknownElementPropertiesError(ValueError):
    """An atomic number that the element property table does not cover."""


def table_path() -> Path:
    """Path of the shipped element property CSV."""
    return Path(str(resources.files("eqna.data") / "embedded" / TABLE_NAME))


def _symbol(z: int) -> str:
    return chemical_symbols[z] if 0 <= z < len(chemical_symbols) else "?"


@lru_cache(maxsize=1)
def _load() -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Raw table: Z [n], properties [n, P] (NaN where missing), block one-hot [n, 4], names."""
    path = table_path()
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    absent = [c for c in ("Z", "block", *PROPERTY_COLUMNS) if rows and c not in rows[0]]
    if not rows or absent:
        raise ValueError(f"{path}: empty or missing columns {absent}")
    z = np.array([int(r["Z"]) for r in rows])
    values = np.array(
        [[float(r[c]) if r[c].strip() else np.nan for c in PROPERTY_COLUMNS] for r in rows]
    )  # [n, P]
    bad = [r["symbol"] for r in rows if r["block"] not in BLOCKS]
    if bad:
        raise ValueError(f"{path}: block not one of {BLOCKS} for {bad}")
    blocks = np.array([[float(r["block"] == b) for b in BLOCKS] for r in rows])  # [n, 4]
    return z, values, blocks, tuple(r["symbol"] for r in rows)


def element_property_table(elements: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """Standardised element property features for the given atomic numbers, in that order.

    Columns, in order:

    1. the ``PROPERTY_COLUMNS`` (group and period included as numbers), each standardised
       with the mean and (population) std over all elements in the table that have a value,
       so the features do not depend on which elements a data set contains. A missing value
       is replaced by the column mean, i.e. 0 after standardising;
    2. the block one-hot ``block_s, block_p, block_d, block_f``;
    3. for each property with any missing value in the whole table, a 0/1 indicator
       ``<property>_missing`` that is 1 where the value was missing (in the shipped table:
       electronegativity, electron_affinity and atomic_volume).

    Group and period are not one-hot encoded: the per-element one-hot embedding (another
    module) already gives every element its own free parameters; here they carry the trend.

    Args:
        elements: atomic numbers, [n_el].

    Returns:
        Features [n_el, F] (float64) and the F feature names.

    Raises:
        UnknownElementPropertiesError: an atomic number is not in the table.
    """
    z_table, values, blocks, symbols = _load()
    requested = [int(z) for z in elements]
    row_of = {int(z): i for i, z in enumerate(z_table)}
    unknown = sorted({z for z in requested if z not in row_of})
    if unknown:
        names = ", ".join(f"{_symbol(z)} (Z={z})" for z in unknown)
        raise UnknownElementPropertiesError(
            f"{table_path()}: no element properties for {names}; the table covers "
            f"Z = {z_table.min()}..{z_table.max()} ({symbols[0]}..{symbols[-1]})"
        )
    missing = np.isnan(values)  # [n, P]
    mean = np.nanmean(values, axis=0)
    std = np.nanstd(values, axis=0)
    std = np.where(std > 0, std, 1.0)
    scaled = np.where(missing, 0.0, (values - mean) / std)  # [n, P]
    flagged = np.flatnonzero(missing.any(axis=0))
    table = np.concatenate([scaled, blocks, missing[:, flagged].astype(np.float64)], axis=1)
    names = [
        *PROPERTY_COLUMNS,
        *(f"block_{b}" for b in BLOCKS),
        *(f"{PROPERTY_COLUMNS[i]}_missing" for i in flagged),
    ]
    rows = np.array([row_of[z] for z in requested], dtype=np.int64)
    return table[rows], names
