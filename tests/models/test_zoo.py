"""Every zoo entry, at its real size: the architecture it ships is E(3)-correct and conservative."""

import copy
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import ZOO_DERIVED, ZOO_ELEMENTS, zoo_architecture

from eqna.data.collate import collate, to_device
from eqna.data.graph import atoms_to_graph
from eqna.testing import (
    check_batch_equals_single,
    check_forces_finite_difference,
    check_isolated_atom,
    check_o3_equivariance,
    check_translation,
    default_structures,
    random_orthogonal,
)
from eqna.testing.locality_checks import check_cross_frame_gradients

ZOO = Path(str(resources.files("eqna.zoo")))  # the shipped zoo, checkout or wheel
ELEMENTS = ZOO_ELEMENTS


@pytest.fixture(scope="module", params=sorted(ZOO.glob("*.yaml")), ids=lambda p: p.stem)
def zoo_model(request):
    model, _, hparams = zoo_architecture(request.param)
    reciprocal = bool((hparams.get("neural_atoms") or {}).get("reciprocal"))
    structures = default_structures(ELEMENTS)[: 2 if reciprocal else 3]  # no slabs for Ewald
    return model.double().eval(), structures


def _energy_model(zoo_model):
    model, structures = zoo_model
    if not model.is_potential:
        pytest.skip("property model: see test_zoo_property_entry_is_invariant")
    return model, structures


def test_zoo_property_entry_is_invariant(zoo_model):
    """Per-structure outputs (properties, class probabilities) are invariant to rotation,
    translation and permutation, and to reflection unless the model reads pseudoscalars."""
    model, structures = zoo_model
    if model.is_potential:
        pytest.skip("potential")
    crystal = structures[1].repeat((2, 1, 1))
    rng = np.random.default_rng(0)
    reflects = not getattr(model.network, "pseudoscalars", None)
    rotation = random_orthogonal(rng, proper=not reflects)
    moved = crystal.copy()
    moved.positions = moved.positions @ rotation.T + 1.5
    moved.cell = moved.cell.array @ rotation.T
    moved = moved[rng.permutation(len(moved))]
    graphs = [atoms_to_graph(a, model.r_max, ELEMENTS) for a in (crystal, moved)]
    out = model(to_device(collate(graphs), "cpu", torch.float64))
    key = "probabilities" if model.is_classifier else "property"
    torch.testing.assert_close(out[key][1].detach(), out[key][0].detach(), rtol=1e-9, atol=1e-10)


TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-10}  # relative; float32 rounding ~1e-6


def test_zoo_entry_is_equivariant(zoo_model, float_dtype):
    model, structures = _energy_model(zoo_model)
    model = copy.deepcopy(model).to(float_dtype)
    check_o3_equivariance(model, structures, float_dtype, TOLERANCE[float_dtype])
    check_batch_equals_single(model, structures, float_dtype, TOLERANCE[float_dtype])
    check_cross_frame_gradients(model, structures, float_dtype)


def test_zoo_entry_is_translation_invariant(zoo_model):
    model, structures = _energy_model(zoo_model)
    check_translation(model, structures)


def test_zoo_entry_is_conservative(zoo_model):
    model, structures = _energy_model(zoo_model)
    check_forces_finite_difference(model, structures[:1])


def test_zoo_entry_isolated_atoms(zoo_model):
    model, _ = _energy_model(zoo_model)
    check_isolated_atom(model, dict(zip(ELEMENTS, ZOO_DERIVED["atomic_energies"], strict=True)))


def test_zoo_entry_survives_pickling(zoo_model):
    """ddp_spawn and other launchers send the model to their processes by pickle."""
    import pickle

    model, structures = zoo_model
    graph = atoms_to_graph(structures[0], model.r_max, ELEMENTS)
    batch = to_device(collate([graph]), "cpu", torch.float64)
    copied = pickle.loads(pickle.dumps(model))
    expected, got = model(dict(batch)), copied(dict(batch))
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


def test_zoo_entry_atomic_virial_sums_to_the_virial(zoo_model):
    """Per-atom virials (LAMMPS' compute stress/atom) add up to the strain-derivative virial,
    for every entry whose energy sees positions only through edges."""
    model, structures = _energy_model(zoo_model)
    crystal = structures[1].repeat((2, 1, 1))
    crystal.rattle(0.05, seed=2)
    graph = atoms_to_graph(crystal, model.r_max, ELEMENTS)
    out = model(to_device(collate([graph]), "cpu", torch.float64), compute_atomic_virial=True)
    per_atom = out["atomic_virial"].detach()
    assert per_atom.shape == (len(crystal), 3, 3)
    torch.testing.assert_close(per_atom, per_atom.transpose(1, 2))
    total, virial = per_atom.sum(dim=0), out["virial"][0].detach()
    if model.atomic_virial_is_complete:
        torch.testing.assert_close(total, virial, rtol=1e-9, atol=1e-10)
    else:  # the reciprocal-space view's share is in the virial, not on any edge
        assert not torch.allclose(total, virial, rtol=1e-6, atol=1e-8)
