"""EqnaCalculator refuses the structures training refuses, on the edges it already has."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

import eqna.data.validation as validation
from eqna.calculators import EqnaCalculator
from eqna.models.io import build_model

ELEMENTS = [1, 6, 8, 14]


@pytest.fixture(scope="module")
def model():
    hparams = {"elements": ELEMENTS, "atomic_energies": [0.0] * 4, "r_max": 3.0, "scale": 2.0}
    return build_model("equivariant", hparams)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_positions_are_refused(model, value):
    atoms = molecule("H2O")
    atoms.calc = EqnaCalculator(model)
    atoms.get_potential_energy()
    atoms.positions[1, 0] = value
    with pytest.raises(ValueError, match=r"EqnaCalculator: 1 atom position\(s\) are not finite"):
        atoms.get_forces()


def test_atoms_closer_than_min_distance(model):
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.05]])
    atoms.calc = EqnaCalculator(model)
    with pytest.raises(ValueError, match=r"0.05 Å apart, closer than min_distance=0.1 Å"):
        atoms.get_potential_energy()
    atoms.calc = EqnaCalculator(model, min_distance=0.0)  # 0: not checked
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(ValueError, match="min_distance must be >= 0"):
        EqnaCalculator(model, min_distance=-1)


def test_compressed_and_degenerate_cells(model):
    crystal = bulk("Si", "diamond", a=5.43, cubic=True)
    crystal.set_cell(crystal.cell / 100, scale_atoms=True)
    crystal.calc = EqnaCalculator(model)
    with pytest.raises(ValueError, match="EqnaCalculator: 8 atoms at a number density"):
        crystal.get_potential_energy()
    flat = Atoms("Si2", positions=[[0, 0, 0], [1, 1, 0]], cell=[[4, 0, 0], [0, 4, 0], [4, 4, 0]])
    flat.pbc = True
    flat.calc = EqnaCalculator(model)
    with pytest.raises(ValueError, match="linearly dependent"):
        flat.get_potential_energy()


def test_distance_check_reuses_the_verlet_list(model, monkeypatch):
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    calc = atoms.calc = EqnaCalculator(model, skin=0.5)
    atoms.get_potential_energy()
    searches = []
    monkeypatch.setattr(validation, "neighbour_graph", lambda *a: searches.append(a))
    for _ in range(3):
        atoms.positions[0] += 0.01
        atoms.get_forces()
    assert calc.neighbour_list.num_builds == 1 and not searches
