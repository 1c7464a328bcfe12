"""Shipped test helpers: physics checks for any eqna model and the shared test-suite mixin.

See :mod:`eqna.testing.model_checks` for the checks and :mod:`eqna.testing.suite` for
:class:`ModelTestSuite` and the default structures.
"""

from eqna.testing.model_checks import (
    check_batch_equals_single,
    check_cutoff_smoothness,
    check_forces_finite_difference,
    check_isolated_atom,
    check_o3_equivariance,
    check_permutation,
    check_save_load_roundtrip,
    check_stress_finite_difference,
    check_translation,
    model_cutoff,
    model_elements,
    predict,
    random_orthogonal,
    relative_error,
)
from eqna.testing.suite import (
    ModelTestSuite,
    default_structures,
    mixed_pbc_slab,
    rattled_molecule,
    triclinic_crystal,
)

__all__ = [
    "ModelTestSuite",
    "check_batch_equals_single",
    "check_cutoff_smoothness",
    "check_forces_finite_difference",
    "check_isolated_atom",
    "check_o3_equivariance",
    "check_permutation",
    "check_save_load_roundtrip",
    "check_stress_finite_difference",
    "check_translation",
    "default_structures",
    "mixed_pbc_slab",
    "model_cutoff",
    "model_elements",
    "predict",
    "random_orthogonal",
    "rattled_molecule",
    "relative_error",
    "triclinic_crystal",
]
