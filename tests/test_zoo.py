"""Every zoo entry, at its real size: the architecture it ships is E(3)-correct and conservative."""

from pathlib import Path

import pytest
import torch

from eqna.models.io import build_model
from eqna.testing import (
    check_batch_equals_single,
    check_forces_finite_difference,
    check_isolated_atom,
    check_o3_equivariance,
    check_translation,
    default_structures,
)
from eqna.train.config import load_config

ZOO = Path(__file__).resolve().parents[1] / "zoo"
ELEMENTS = [1, 6, 8]
DERIVED = {"elements": ELEMENTS, "atomic_energies": [-13.6, -1029.5, -2041.3]}


@pytest.fixture(scope="module", params=sorted(ZOO.glob("*.yaml")), ids=lambda p: p.stem)
def zoo_model(request):
    model = dict(load_config(request.param).model)
    family = model.pop("family")
    torch.manual_seed(0)
    hparams = {**model, **DERIVED, "avg_num_neighbors": 10.0, "scale": 1.3, "shift": -0.2}
    reciprocal = bool((model.get("neural_atoms") or {}).get("reciprocal"))
    structures = default_structures(ELEMENTS)[: 2 if reciprocal else 3]  # no slabs for Ewald
    return build_model(family, hparams).double().eval(), structures


def test_zoo_entry_is_equivariant(zoo_model):
    model, structures = zoo_model
    check_o3_equivariance(model, structures)
    check_translation(model, structures)
    check_batch_equals_single(model, structures)


def test_zoo_entry_is_conservative(zoo_model):
    model, structures = zoo_model
    check_forces_finite_difference(model, structures[:1])


def test_zoo_entry_isolated_atoms(zoo_model):
    model, _ = zoo_model
    check_isolated_atom(model, dict(zip(ELEMENTS, DERIVED["atomic_energies"], strict=True)))
