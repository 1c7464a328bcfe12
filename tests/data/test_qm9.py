"""QM9 from qm9pack's csv files: units, parsing, errors, and packing into a store."""

import math
from pathlib import Path

import numpy as np
import pytest
from ase.units import Hartree

from eqna.data.datasets import DataError
from eqna.data.qm9 import PARTS, iter_qm9

HEADER = (
    "XYZ_file,Index,SMILES,InChi,N_atoms,Stoichiometry,Elements,XYZ_Ang,Mulliken_pop,"
    "Harmonic_Freq_cmi,RotA_GHz,RotB_GHz,RotC_GHz,Dipole_debye,Polarizability_bohr3,HOMO_au,"
    "LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,ZPVE_au,InternalEnergy_0K_au,InternalEnergy_298K_au,"
    "Enthalphy_298K_au,GibbsFreeEnergy_298K_au,Heatcapacity_Cv_cal_mol_K"
)
METHANE = (
    '"dsgdb9nsd_000001.xyz",1,"C","InChI=1S/CH4/h1H4",5,"[4,1,0,0,0]","[\'C\',\'H\',\'H\',\'H\','
    "'H']\",\"[[-0.0126981359,1.0858041578,0.0080009958],[0.002150416,-0.0060313176,"
    "0.0019761204],[1.0117308433,1.4637511618,0.0002765748],[-0.540815069,1.4475266138,"
    '-0.8766437152],[-0.5238136345,1.4379326443,0.9063972942]]","[-0.535689,0.133921,0.133922,'
    '0.133923,0.133923]","[1341.307,1341.3284]",157.7118,157.70997,157.70699,0.,13.21,-0.3877,'
    "0.1171,0.5048,35.3641,0.044749,-40.47893,-40.476062,-40.475117,-40.498597,6.469"
)
ACETYLENE = (  # numbers written as "0." and "1.", which are no JSON
    '"dsgdb9nsd_000004.xyz",4,"C#C","InChI=1S/C2H2/c1-2/h1-2H",4,"[2,2,0,0,0]","[\'C\',\'C\','
    "'H','H']\",\"[[0.5995394918,0.,1.],[-0.5995394918,0.,1.],[-1.6616385861,0.,1.],"
    '[1.6616385861,0.,1.]]","[-0.207019,-0.207019,0.207019,0.207019]","[549.7648]",0.,'
    "35.6100361,35.6100361,0.,16.28,-0.2845,0.0506,0.3351,59.5248,0.026841,-77.308427,"
    "-77.305527,-77.30458,-77.327429,8.574"
)


def _folder(tmp_path: Path, rows=(METHANE, ACETYLENE)) -> Path:
    for i, name in enumerate(PARTS):
        lines = [HEADER] + ([rows[i]] if i < len(rows) else [])
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_rows_become_molecules_in_ev(tmp_path):
    methane, acetylene = list(iter_qm9(_folder(tmp_path)))
    assert methane.get_chemical_formula() == "CH4" and acetylene.get_chemical_formula() == "C2H2"
    assert methane.info["U0"] == pytest.approx(-40.47893 * Hartree, rel=1e-15)
    assert methane.info["gap"] == pytest.approx(0.5048 * Hartree, rel=1e-15)
    assert methane.info["alpha"] == 13.21 and methane.info["mu"] == 0.0
    assert methane.info["qm9_index"] == 1 and methane.info["smiles"] == "C"
    np.testing.assert_allclose(methane.positions[1], [0.002150416, -0.0060313176, 0.0019761204])
    np.testing.assert_allclose(acetylene.positions[:, 2], 1.0)
    assert math.isclose(methane.arrays["mulliken_charges"].sum(), 0.0, abs_tol=1e-5)


def test_a_malformed_row_names_file_and_line(tmp_path):
    broken = METHANE.replace(",5,", ",6,", 1)  # N_atoms disagrees with the elements
    with pytest.raises(DataError, match=r"qm9_part1\.csv line 2: not a qm9pack row"):
        list(iter_qm9(_folder(tmp_path, (broken,))))


def test_the_installed_package_holds_all_of_qm9():
    from importlib.util import find_spec

    if find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed (pip install 'eqna[qm9]')")
    first = next(iter_qm9())
    assert first.get_chemical_formula() == "CH4"
    assert first.info["U0"] == pytest.approx(-40.47893 * Hartree)
