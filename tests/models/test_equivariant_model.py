"""The shared model test suite (eqna.testing) on small equivariant models, l_max 1 and 2."""

import functools

import pytest
import torch
from helpers import ELEMENTS, HPARAMS

from eqna.data import keys
from eqna.models import AtomisticModel
from eqna.models.io import build_model
from eqna.testing import (
    ModelTestSuite,
    check_batch_equals_single,
    check_cutoff_smoothness,
    check_o3_equivariance,
    check_stress_finite_difference,
    check_translation,
    default_structures,
)


class TestEquivariantLmax1(ModelTestSuite):
    family = "equivariant"
    hparams = HPARAMS


class TestEquivariantLmax2(TestEquivariantLmax1):
    hparams = {**HPARAMS, "l_max": 2}


# The checks themselves must catch broken models (else the suite above proves nothing).


@functools.cache
def _base_energy_model():
    torch.manual_seed(0)
    return build_model("equivariant", HPARAMS).network.double().eval()


class _Perturbed(torch.nn.Module):
    """The l_max 1 test model plus an extra energy term ``extra(data) -> [g]``."""

    def __init__(self, extra):
        super().__init__()
        self.inner = _base_energy_model()
        self.r_max, self.elements, self.extra = self.inner.r_max, self.inner.elements, extra
        self.output, self.max_num_neighbors = "energy", None

    def forward(self, data):
        out = dict(self.inner(data))
        out[keys.ENERGY] = out[keys.ENERGY] + self.extra(data)
        return out


def _chiral(data):
    """Triple product of the first three bonds of each graph: rotation invariant, parity odd."""
    pos, ptr = data[keys.POSITIONS], data[keys.PTR]
    terms = []
    for start in ptr[:-1].tolist():
        p = pos[start : start + 4]
        terms.append(torch.dot(p[1] - p[0], torch.linalg.cross(p[2] - p[0], p[3] - p[0])))
    return 0.1 * torch.stack(terms)


def _edge_sum(data, pair):
    from eqna.nn.geometry import edge_vectors, scatter_sum

    lengths = edge_vectors(data).norm(dim=-1)
    graph = data[keys.BATCH][data[keys.EDGE_INDEX][0]]
    return scatter_sum(pair(lengths), graph, data[keys.NUM_ATOMS].shape[0])


class _WrongStressSign(AtomisticModel):
    def forward(self, data, compute_stress=True):
        out = super().forward(data, compute_stress)
        if compute_stress:
            out[keys.STRESS] = -out[keys.STRESS]
        return out


def test_checks_catch_a_parity_violation():
    model = AtomisticModel(_Perturbed(_chiral)).eval()
    structures = default_structures(ELEMENTS)
    with pytest.raises(AssertionError, match=r"\(improper rotation"):
        check_o3_equivariance(model, structures)
    check_translation(model, structures)  # rotations alone and translations cannot see it


@pytest.mark.parametrize(
    ("pair", "message"),
    [(lambda r: 0.01 / r, "energy jump"), (lambda r: 0.01 * (4.0 - r), "force jump")],
    ids=["energy-step", "force-step"],
)
def test_checks_catch_a_hard_cutoff(pair, message):
    model = AtomisticModel(_Perturbed(lambda data: _edge_sum(data, pair))).eval()
    with pytest.raises(AssertionError, match=message):
        check_cutoff_smoothness(model)


def test_checks_catch_wrong_stress_and_batch_leaks():
    structures = default_structures(ELEMENTS)
    with pytest.raises(AssertionError, match="stress relative error"):
        check_stress_finite_difference(_WrongStressSign(_Perturbed(_zero)).eval(), structures)
    leaky = AtomisticModel(_Perturbed(lambda d: 0.01 * d[keys.POSITIONS].sum() + _zero(d)))
    with pytest.raises(AssertionError, match="batched"):
        check_batch_equals_single(leaky.eval(), structures)


def _zero(data):
    return data[keys.POSITIONS].new_zeros(data[keys.NUM_ATOMS].shape[0])
