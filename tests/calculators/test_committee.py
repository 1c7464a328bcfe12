"""A committee of models in one EqnaCalculator: its results are the members' mean, its
``*_std`` their spread, one graph serves them all, and members that read other graphs are
refused."""

import numpy as np
import pytest
from ase.build import bulk, molecule
from test_calculator import make_model

from eqna.calculators import EqnaCalculator

pytestmark = pytest.mark.usefixtures("one_thread")


def _single(model, atoms):
    atoms = atoms.copy()
    atoms.calc = EqnaCalculator(model)
    periodic = atoms.pbc.all()
    return (atoms.get_potential_energy(), atoms.get_forces(),
            atoms.get_stress() if periodic else None)  # fmt: skip


@pytest.mark.parametrize("periodic", [False, True], ids=["molecule", "crystal"])
def test_committee_mean_and_spread_are_the_members(periodic):
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1) if periodic else molecule("CH3OH")
    atoms.rattle(0.05, seed=3)
    members = [make_model(seed) for seed in range(3)]
    singles = [_single(m, atoms) for m in members]
    atoms.calc = EqnaCalculator(members)
    energies = np.array([e for e, _, _ in singles])
    forces = np.array([f for _, f, _ in singles])  # [k, n, 3]
    assert atoms.get_potential_energy() == pytest.approx(energies.mean(), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), forces.mean(axis=0), atol=1e-10)
    results = atoms.calc.results
    assert results["energy_std"] == pytest.approx(energies.std(), abs=1e-10) and energies.std() > 0
    per_atom = np.sqrt(((forces - forces.mean(axis=0)) ** 2).mean(axis=0).sum(axis=1))
    np.testing.assert_allclose(results["forces_std"], per_atom, atol=1e-10)
    assert results["forces_std"].shape == (len(atoms),)
    if periodic:
        stresses = np.array([s for _, _, s in singles])
        np.testing.assert_allclose(atoms.get_stress(), stresses.mean(axis=0), atol=1e-10)
        np.testing.assert_allclose(results["stress_std"], stresses.std(axis=0), atol=1e-10)
    else:
        assert "stress_std" not in results
    assert atoms.calc.neighbour_list.num_builds == 1  # one graph for every member


def test_a_committee_of_one_is_the_model():
    atoms = molecule("CH3OH")
    model = make_model(0)
    atoms.calc = EqnaCalculator([model])
    energy, forces, _ = _single(model, atoms)
    assert atoms.get_potential_energy() == energy
    np.testing.assert_array_equal(atoms.get_forces(), forces)
    assert "energy_std" not in atoms.calc.results


def test_members_that_read_other_graphs_are_refused():
    with pytest.raises(ValueError, match="committee member 1 .* other graphs"):
        EqnaCalculator([make_model(0), make_model(1, r_max=3.5)])
    with pytest.raises(ValueError, match="at least one model"):
        EqnaCalculator([])
