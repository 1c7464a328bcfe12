"""EqnaCalculator: agreement with the model, Verlet-list reuse, errors, ASE drivers, model files."""

import warnings
from importlib import resources

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.filters import FrechetCellFilter
from ase.io import read
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from eqna.calculators import EqnaCalculator
from eqna.data import keys
from eqna.data.collate import collate, to_device
from eqna.data.graph import UnknownElementError, atoms_to_graph
from eqna.models.io import build_model, save_model

ELEMENTS = [1, 6, 8, 14]  # H, C, O, Si


def hparams(**overrides) -> dict:
    """A small random equivariant model; ``scale`` sets the size of energies and forces."""
    params = dict(
        elements=ELEMENTS,
        atomic_energies=[0.0] * len(ELEMENTS),
        avg_num_neighbors=10.0,
        num_channels=8,
        l_max=1,
        num_layers=2,
        r_max=4.0,
        scale=5.0,
    )
    return {**params, **overrides}


def make_model(seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return build_model("equivariant", hparams(**overrides)).double().eval()


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def acetylacetone() -> Atoms:
    path = resources.files("eqna.data") / "embedded" / "xtb_molecules.xyz"
    frames = read(str(path), index=":")
    atoms = next(a for a in frames if a.info.get("config_type") == "acetylacetone")
    assert len(atoms) == 15
    atoms.calc = None
    return atoms


def silicon(repeat=(1, 1, 1), seed: int = 0) -> Atoms:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * repeat
    atoms.rattle(0.05, seed=seed)
    return atoms


def direct(model, atoms: Atoms) -> dict[str, np.ndarray]:
    """The model on a freshly built, exact neighbour list (the reference)."""
    graph = atoms_to_graph(atoms, model.r_max, ELEMENTS)
    batch = to_device(collate([graph]), "cpu", torch.float64)
    out = model(batch, compute_stress=bool(atoms.pbc.all()))
    return {k: v.detach().numpy() for k, v in out.items()}


@pytest.mark.parametrize("system", ["acetylacetone", "silicon"])
def test_matches_model(model, acetylacetone, system):
    atoms = acetylacetone.copy() if system == "acetylacetone" else silicon()
    atoms.calc = EqnaCalculator(model)
    ref = direct(model, atoms)
    energy = atoms.get_potential_energy()
    assert energy == pytest.approx(float(ref[keys.ENERGY][0]), abs=1e-10)
    assert atoms.calc.results["free_energy"] == energy
    np.testing.assert_allclose(atoms.get_forces(), ref[keys.FORCES], atol=1e-10)
    np.testing.assert_allclose(
        atoms.get_potential_energies(), ref[keys.ATOMIC_ENERGIES], atol=1e-10
    )
    assert atoms.get_potential_energies().sum() == pytest.approx(energy, abs=1e-10)
    if system == "silicon":
        np.testing.assert_allclose(atoms.get_stress(voigt=False), ref[keys.STRESS][0], atol=1e-10)
        assert np.abs(ref[keys.STRESS]).max() > 1e-6  # a non-trivial check


def test_stress_of_molecule_is_a_clear_error(model, acetylacetone):
    atoms = acetylacetone.copy()
    atoms.calc = EqnaCalculator(model)
    with pytest.raises(PropertyNotImplementedError, match="periodic in all three"):
        atoms.get_stress()
    atoms.get_forces()  # the calculator still works afterwards


def test_unknown_element_is_named(model):
    atoms = Atoms("FeH", positions=[[0, 0, 0], [0, 0, 1.6]])
    atoms.calc = EqnaCalculator(model)
    with pytest.raises(UnknownElementError, match="Fe"):
        atoms.get_potential_energy()


@pytest.mark.parametrize(
    ("system", "temperature", "timestep"), [("acetylacetone", 1000, 0.5), ("silicon", 3000, 3.0)]
)
def test_skin_reuse_equals_fresh_list(model, acetylacetone, system, temperature, timestep):
    """Along a hot MD run the cached list is rebuilt several times and never changes results."""
    atoms = acetylacetone.copy() if system == "acetylacetone" else silicon()
    atoms.calc = EqnaCalculator(model, skin=0.3)
    with warnings.catch_warnings():  # ASE's deprecation notice of the rng argument's future
        warnings.simplefilter("ignore", DeprecationWarning)
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(1))
    dyn = VelocityVerlet(atoms, timestep=timestep * units.fs)
    for _ in range(20):
        dyn.run(1)
        ref = direct(model, atoms)
        assert atoms.get_potential_energy() == pytest.approx(float(ref[keys.ENERGY][0]), abs=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), ref[keys.FORCES], atol=1e-12)
    builds = atoms.calc.neighbour_list.num_builds
    assert 3 <= builds < 15, builds


def test_bfgs_lowers_energy(model, acetylacetone):
    atoms = acetylacetone.copy()
    atoms.calc = EqnaCalculator(model)
    start = atoms.get_potential_energy()
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=5)
    assert atoms.get_potential_energy() < start


def test_cell_filter_lowers_energy(model):
    atoms = silicon()
    atoms.set_cell(atoms.cell * 1.03, scale_atoms=True)
    atoms.calc = EqnaCalculator(model)
    start, cell = atoms.get_potential_energy(), atoms.cell.array.copy()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-3, steps=5)
    assert atoms.get_potential_energy() < start
    assert not np.allclose(atoms.cell.array, cell)  # the stress did drive the cell


def test_nve_conserves_energy(acetylacetone):
    """100 velocity-Verlet steps of 0.5 fs at 300 K: total energy within 1 meV."""
    nve_model = make_model(elements=[1, 6, 8], atomic_energies=[0.0] * 3, num_channels=16)
    # A random model's force scale is arbitrary: rescale it to max |F| = 0.5 eV/Å, so that the
    # Verlet error of a 0.5 fs step (not the model) stays well inside the 1 meV bound
    probe = acetylacetone.copy()
    probe.calc = EqnaCalculator(nve_model)
    max_force = np.abs(probe.get_forces()).max()
    nve_model.network.energy_shift.scale.mul_(0.5 / max_force)
    atoms = acetylacetone.copy()
    atoms.calc = EqnaCalculator(nve_model)
    with warnings.catch_warnings():  # ASE's deprecation notice of the rng argument's future
        warnings.simplefilter("ignore", DeprecationWarning)
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    start = atoms.get_total_energy()
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    drift = []
    for _ in range(100):
        dyn.run(1)
        drift.append(abs(atoms.get_total_energy() - start))
    assert max(drift) < 1e-3
    assert atoms.calc.neighbour_list.num_builds > 1


def test_model_file_round_trip_and_dtype(model, tmp_path):
    path = tmp_path / "model.pt"
    save_model(path, model, "equivariant", hparams())
    atoms = silicon()
    from_module = EqnaCalculator(model).get_property("forces", atoms)
    from_file = EqnaCalculator(str(path)).get_property("forces", atoms)
    np.testing.assert_array_equal(from_file, from_module)
    calc32 = EqnaCalculator(path, dtype="float32")
    assert calc32.dtype == torch.float32
    np.testing.assert_allclose(calc32.get_property("forces", atoms), from_module, atol=1e-4)
    with pytest.raises(ValueError, match="dtype"):
        EqnaCalculator(path, dtype="int64")


def test_module_is_copied_not_frozen(model):
    calc = EqnaCalculator(model, dtype=torch.float32)
    assert all(p.requires_grad for p in model.parameters())
    assert next(model.parameters()).dtype == torch.float64
    assert not any(p.requires_grad for p in calc.model.parameters())


def test_zoo_name_lookup(model, tmp_path, monkeypatch):
    save_model(tmp_path / "tiny.pt", model, "equivariant", hparams())
    (tmp_path / "nested").mkdir()
    save_model(tmp_path / "nested" / "model.pt", model, "equivariant", hparams())
    monkeypatch.setenv("EQNA_ZOO", str(tmp_path))
    atoms = silicon()
    expected = EqnaCalculator(model).get_property("energy", atoms)
    for name in ("tiny", "nested"):
        calc = EqnaCalculator(name)
        assert calc.get_property("energy", atoms) == expected
        assert calc.info["family"] == "equivariant"
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "missing.pt")):
        EqnaCalculator("missing")


def test_translation_keeps_the_list(model, acetylacetone):
    """A common drift is no relative motion: the list is kept; one atom moving rebuilds it."""
    atoms = acetylacetone.copy()
    atoms.calc = EqnaCalculator(model, skin=0.4)
    energy = atoms.get_potential_energy()
    atoms.translate([1.0, -2.0, 0.5])
    assert atoms.get_potential_energy() == pytest.approx(energy, abs=1e-10)
    assert atoms.calc.neighbour_list.num_builds == 1
    atoms.positions[0] += [0.3, 0.0, 0.0]
    atoms.get_potential_energy()
    assert atoms.calc.neighbour_list.num_builds == 2
