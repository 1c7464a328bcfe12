"""Default test structures and the ``ModelTestSuite`` mixin every zoo family's tests inherit.

Usage (pytest collects the ``Test*`` subclass; the mixin itself is not collected)::

    class TestMyFamily(ModelTestSuite):
        family = "equivariant"
        hparams = {"elements": [1, 6, 8], "atomic_energies": [-1.0, -2.0, -3.0], ...}

A subclass may instead override ``make_model(self, dtype)`` (then the save/load test is
skipped unless ``family`` and ``hparams`` are set) and ``structures(self, elements, r_max)``.
"""

import unittest
from collections.abc import Sequence

import ase.build
import numpy as np
import torch
from ase import Atoms

from eqna.testing import locality_checks as locality
from eqna.testing import model_checks as checks


def _on_elements(numbers: np.ndarray, elements: Sequence[int]) -> np.ndarray:
    """Keep ``numbers`` if the model knows them all, else map species onto ``elements``."""
    if set(numbers.tolist()) <= set(elements):
        return numbers
    species = sorted(set(numbers.tolist()))
    lookup = {z: elements[k % len(elements)] for k, z in enumerate(species)}
    return np.array([lookup[z] for z in numbers.tolist()])


def rattled_molecule(elements: Sequence[int], seed: int = 0) -> Atoms:
    """Ethanol (9 atoms, no cell) rattled by 0.05 Å; species remapped if H/C/O are unknown."""
    atoms = ase.build.molecule("CH3CH2OH")
    atoms.numbers = _on_elements(atoms.numbers, elements)
    atoms.rattle(0.05, seed=seed)
    return atoms


def triclinic_crystal(elements: Sequence[int], seed: int = 0) -> Atoms:
    """Four atoms, 2+ elements, in a randomly sheared ~3.6 Å cell (smaller than any r_max > 3.6
    Å, so atoms see many periodic images of themselves and of each other)."""
    rng = np.random.default_rng(seed)
    cell = 3.6 * (np.eye(3) + 0.12 * rng.normal(size=(3, 3)))
    fractional = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    numbers = [elements[k % len(elements)] for k in range(4)]
    atoms = Atoms(numbers=numbers, scaled_positions=fractional, cell=cell, pbc=True)
    atoms.rattle(0.08, seed=seed + 1)
    return atoms


def mixed_pbc_slab(elements: Sequence[int], seed: int = 0) -> Atoms:
    """Five atoms periodic along two skewed lattice vectors, free along z (zero third row)."""
    rng = np.random.default_rng(seed)
    cell = np.array([[3.3, 0.0, 0.0], [1.2, 3.1, 0.0], [0.0, 0.0, 0.0]])
    frac = np.array([[0, 0], [0.5, 0.5], [0.0, 0.5], [0.5, 0.0], [0.25, 0.25]])
    z = np.array([0.0, 0.3, 1.6, 1.9, 3.1])
    positions = np.column_stack([frac @ cell[:2, :2], z])
    numbers = [elements[(k + 1) % len(elements)] for k in range(5)]
    atoms = Atoms(numbers=numbers, positions=positions, cell=cell, pbc=[True, True, False])
    atoms.positions += 0.05 * rng.normal(size=positions.shape)
    return atoms


def default_structures(elements: Sequence[int], seed: int = 0) -> list[Atoms]:
    """Molecule, triclinic crystal and mixed-pbc slab: different sizes and periodicities."""
    return [
        rattled_molecule(elements, seed),
        triclinic_crystal(elements, seed),
        mixed_pbc_slab(elements, seed),
    ]


class ModelTestSuite:
    """Physics tests of one model family; subclasses set ``family`` and ``hparams``.

    Each ``test_*`` method runs one check of :mod:`eqna.testing.model_checks` or
    :mod:`eqna.testing.locality_checks` on the default structures: exact symmetries and
    locality in float32 and float64 (the ``float_dtype`` fixture of
    :mod:`eqna.testing.fixtures`, which the test folder's conftest.py imports), finite
    differences in float64. Models are built once per class and dtype, with
    ``torch.manual_seed(seed)``.
    """

    family: str | None = None
    hparams: dict | None = None
    seed: int = 0
    tol64: float = 1e-10  # relative, equivariance / batching in float64
    tol32: float = 1e-5  # relative; float32 rounding alone is ~1e-6 for l_max 1
    fd_tol: float = 1e-6  # relative; measured ~2e-8 at the default steps
    local: bool = True  # False: the model interacts beyond r_max (e.g. neural atoms)

    def make_model(self, dtype: torch.dtype):
        """The wrapped model under test, in ``dtype`` and eval mode."""
        from eqna.models.io import build_model

        if self.family is None or self.hparams is None:
            raise NotImplementedError("set family and hparams, or override make_model")
        torch.manual_seed(self.seed)
        return build_model(self.family, dict(self.hparams)).to(dtype).eval()

    def structures(self, elements: Sequence[int], r_max: float) -> list[Atoms]:
        """Test structures made of ``elements``; see :func:`default_structures`."""
        return default_structures(elements, self.seed)

    def reference_energies(self) -> dict[int, float]:
        """E0 per atomic number, from ``hparams`` ``elements`` and ``atomic_energies``."""
        if not self.hparams or "atomic_energies" not in self.hparams:
            raise unittest.SkipTest("no atomic_energies in hparams: override reference_energies")
        pairs = zip(self.hparams["elements"], self.hparams["atomic_energies"], strict=True)
        return {int(z): float(e) for z, e in pairs}

    def model(self, dtype: torch.dtype = torch.float64):
        """``make_model(dtype)``, cached on the class."""
        cache = type(self).__dict__.get("_model_cache")
        if cache is None:
            cache = {}
            type(self)._model_cache = cache
        if dtype not in cache:
            cache[dtype] = self.make_model(dtype)
        return cache[dtype]

    def _structures(self) -> list[Atoms]:
        model = self.model()
        return self.structures(checks.model_elements(model), checks.model_cutoff(model))

    def tol(self, dtype: torch.dtype) -> float:
        """The relative tolerance of exact symmetries in ``dtype``."""
        return self.tol64 if dtype == torch.float64 else self.tol32

    def test_o3_equivariance(self, float_dtype):
        model, tol = self.model(float_dtype), self.tol(float_dtype)
        checks.check_o3_equivariance(model, self._structures(), float_dtype, tol)

    def test_translation(self):
        # float64 only: a large translation costs float32 positions their last digits
        checks.check_translation(self.model(), self._structures(), torch.float64, self.tol64)

    def test_permutation(self, float_dtype):
        model, tol = self.model(float_dtype), self.tol(float_dtype)
        checks.check_permutation(model, self._structures(), float_dtype, tol)

    def test_forces_finite_difference(self):
        checks.check_forces_finite_difference(self.model(), self._structures(), tol=self.fd_tol)

    def test_stress_finite_difference(self):
        checks.check_stress_finite_difference(self.model(), self._structures(), tol=self.fd_tol)

    def test_batch_equals_single(self, float_dtype):
        structures = self._structures()
        structures = structures + [structures[0][:4]]  # a second, smaller molecule
        model, tol = self.model(float_dtype), self.tol(float_dtype)
        checks.check_batch_equals_single(model, structures, float_dtype, tol)

    def test_cross_frame_gradients(self, float_dtype):
        structures = self._structures()
        locality.check_cross_frame_gradients(self.model(float_dtype), structures, float_dtype)

    def test_large_separation(self, float_dtype):
        if not self.local:
            raise unittest.SkipTest("the model couples fragments beyond r_max by design")
        molecule = self._structures()[0]
        model, tol = self.model(float_dtype), self.tol(float_dtype)
        locality.check_large_separation(model, molecule, molecule[:4], float_dtype, tol)

    def test_isolated_atom(self):
        checks.check_isolated_atom(self.model(), self.reference_energies())

    def test_cutoff_smoothness(self):
        checks.check_cutoff_smoothness(self.model(), local=self.local)

    def test_save_load_roundtrip(self):
        import tempfile

        if self.family is None or self.hparams is None:
            raise unittest.SkipTest("save/load needs family and hparams")
        with tempfile.TemporaryDirectory() as directory:
            checks.check_save_load_roundtrip(
                self.model(), self.family, dict(self.hparams), self._structures(), directory
            )
