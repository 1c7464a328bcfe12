"""QM9 (134k small organic molecules, B3LYP/6-31G(2df,p); Ramakrishnan et al., Sci. Data 1,
140022 (2014)) from the ``qm9pack`` wheel (``pip install "eqna[qm9]"``), read without pandas
and without a download: its csv files lie under ``qm9pack/data/``.

Each molecule becomes an ``Atoms`` (positions in Å from ``XYZ_Ang``) with, in ``atoms.info``:

    U0, U, H, G            internal energy at 0 K and 298 K, enthalpy, free energy (eV)
    homo, lumo, gap, zpve  orbital energies, their gap, zero-point energy (eV)
    mu                     dipole moment (Debye)
    alpha                  isotropic polarizability (bohr^3)
    r2                     electronic spatial extent (bohr^2)
    cv                     heat capacity at 298 K (cal/mol/K)
    A, B, C                rotational constants (GHz)
    qm9_index, smiles      the molecule's number in QM9 and its SMILES

and the Mulliken charges (e) as ``atoms.arrays["mulliken_charges"]``. Hartree are converted
with ``ase.units.Hartree``. ``eqna-pack qm9pack: -o stores/qm9`` packs all of it.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.units import Hartree

from eqna.data.errors import DataError

SPEC = "qm9pack:"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_SYMBOL = re.compile(r"[A-Z][a-z]?")
PARTS = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")
TARGETS = ("U0", "U", "H", "G", "homo", "lumo", "gap", "zpve", "mu", "alpha", "r2", "cv")
TARGETS += ("A", "B", "C")
_HARTREE = {  # column: info key, for values in Hartree
    "InternalEnergy_0K_au": "U0", "InternalEnergy_298K_au": "U", "Enthalphy_298K_au": "H",
    "GibbsFreeEnergy_298K_au": "G", "HOMO_au": "homo", "LUMO_au": "lumo",
    "HOMO_LUMO_gap_au": "gap", "ZPVE_au": "zpve",
}  # fmt: skip
_AS_IS = {
    "Dipole_debye": "mu", "Polarizability_bohr3": "alpha", "R2_bohr2": "r2",
    "Heatcapacity_Cv_cal_mol_K": "cv", "RotA_GHz": "A", "RotB_GHz": "B", "RotC_GHz": "C",
}  # fmt: skip


def data_folder() -> Path:
    """The installed qm9pack's csv folder; a clear error without the package. Found without
    importing it (its ``__init__`` needs setuptools' ``pkg_resources``, which eqna does not)."""
    from importlib.util import find_spec

    spec = find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f'{SPEC} needs the qm9pack package, which is not installed: pip install "eqna[qm9]"'
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [name for name in PARTS if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: the qm9pack data files {', '.join(missing)} are missing")
    return folder


def iter_qm9(folder: Path | None = None) -> Iterator[Atoms]:
    """Every molecule of the csv parts in ``folder`` (default: the installed qm9pack's), in
    QM9's order, one at a time."""
    folder = data_folder() if folder is None else Path(folder)
    csv.field_size_limit(1 << 30)  # a row's frequency list is long
    for name in PARTS:
        path = folder / name
        with open(path, newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    yield _molecule(row)
                except (KeyError, ValueError) as err:
                    raise DataError(f"{path} line {line}: not a qm9pack row ({err})") from err


def _numbers(text: str) -> np.ndarray:
    """The numbers of a list written as ``[[0.59,0.,1.],...]`` (``0.`` is no JSON)."""
    return np.asarray(_NUMBER.findall(text), dtype=np.float64)


def _molecule(row: dict) -> Atoms:
    symbols = _SYMBOL.findall(row["Elements"])
    positions = _numbers(row["XYZ_Ang"]).reshape(-1, 3)
    if positions.shape != (len(symbols), 3) or len(symbols) != int(row["N_atoms"]):
        raise ValueError(f"{len(symbols)} elements, N_atoms {row['N_atoms']}, {positions.shape}")
    atoms = Atoms(symbols=symbols, positions=positions)
    for column, key in _HARTREE.items():
        atoms.info[key] = float(row[column]) * Hartree
    for column, key in _AS_IS.items():
        atoms.info[key] = float(row[column])
    atoms.info["qm9_index"] = int(row["Index"])
    atoms.info["smiles"] = row["SMILES"]
    charges = _numbers(row["Mulliken_pop"])
    if charges.shape == (len(atoms),):
        atoms.arrays["mulliken_charges"] = charges
    return atoms
