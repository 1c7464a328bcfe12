"""Many-body blocks: the symmetric product kernel, and the physics suite at correlation 2 and 3."""

import pytest
import torch
from e3nn import o3
from helpers import HPARAMS
from test_neural_atoms import NA

from eqna.nn.product import SymmetricProduct
from eqna.testing import ModelTestSuite

BASIS = o3.Irreps("4x0e+4x1o+4x2e")
HIDDEN = o3.Irreps("4x0e+4x1o")


def _product(correlation, irreps_in=BASIS, irreps_out=HIDDEN, seed=0):
    torch.manual_seed(seed)
    product = SymmetricProduct(irreps_in, irreps_out, correlation, num_elements=3).double()
    product.refresh_exact()  # as EquivariantNetwork does on every cast
    return product


def _inputs(irreps=BASIS, n=5, seed=1):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(n, irreps.dim, generator=generator, dtype=torch.float64)
    attrs = torch.nn.functional.one_hot(torch.arange(n) % 3, 3).double()
    return a, attrs


def _basis_of(vectors, coefficients):
    """A_i = sum_j c_ijl Y_l(r_ij), channel by channel: an exactly rotatable atomic basis.

    vectors [n, m, 3], coefficients [n, m, channels, 3] (one per l) -> A [n, BASIS].
    """
    blocks = []
    for ell in range(3):
        y = o3.spherical_harmonics(ell, vectors, normalize=True)  # [n, m, 2l + 1]
        blocks.append(torch.einsum("nmc,nmk->nck", coefficients[..., ell], y).flatten(1))
    return torch.cat(blocks, dim=1)


@pytest.mark.parametrize("correlation", [1, 2, 3, 4])
@pytest.mark.parametrize("proper", [True, False])
def test_product_is_o3_equivariant(correlation, proper):
    """Scalars are invariant and vectors rotate when the vectors that make A_i rotate (e3nn's
    D_from_matrix is only good to ~1e-7, so A is built from geometry and D written out)."""
    product = _product(correlation)
    generator = torch.Generator().manual_seed(2)
    vectors = torch.randn(5, 6, 3, generator=generator, dtype=torch.float64)
    coefficients = torch.randn(5, 6, 4, 3, generator=generator, dtype=torch.float64)
    _, attrs = _inputs()
    rotation = o3.rand_matrix(dtype=torch.float64) * (1.0 if proper else -1.0)
    b = product(_basis_of(vectors, coefficients), attrs)
    b_rotated = product(_basis_of(vectors @ rotation.T, coefficients), attrs)
    assert torch.allclose(o3.spherical_harmonics(1, vectors @ rotation.T, True),
                          o3.spherical_harmonics(1, vectors, True) @ rotation.T)  # fmt: skip
    scalars, vectors_out = b[:, :4], b[:, 4:].reshape(5, 4, 3)
    expected = torch.cat([scalars, (vectors_out @ rotation.T).flatten(1)], dim=1)
    assert b.abs().max() > 1e-2
    assert torch.allclose(b_rotated, expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("correlation", [2, 3])
def test_each_order_is_a_homogeneous_polynomial(correlation):
    """With only order nu's weights on, B(t A) = t^nu B(A): order nu is nu-body in A."""
    a, attrs = _inputs()
    for order in range(1, correlation + 1):
        product = _product(correlation)
        with torch.no_grad():
            for weights, orders in zip(product.weights, product.column_orders, strict=True):
                weights[:, orders != order] = 0.0
        b = product(a, attrs)
        assert b.abs().max() > 1e-3, f"order {order} contributes nothing"
        assert torch.allclose(product(2.0 * a, attrs), 2.0**order * b, rtol=1e-10, atol=1e-12)


def test_product_counts_every_coupling_once():
    """A = s + v per channel: order 2 gives s s, v.v (0e) and s v (1o); v x v vanishes."""
    product = _product(2, o3.Irreps("4x0e+4x1o"), HIDDEN)
    assert [w.shape[1] for w in product.weights] == [3, 2]


def test_weights_depend_on_the_element():
    product = _product(3)
    a, attrs = _inputs(n=2)
    a[1] = a[0]
    b = product(a, attrs)  # the same basis on a type-0 and a type-1 atom
    assert not torch.allclose(b[0], b[1])


def test_zero_basis_gives_zero_features():
    product = _product(3)
    a, attrs = _inputs()
    assert product(torch.zeros_like(a), attrs).abs().max() == 0.0


def test_unreachable_output_is_refused():
    with pytest.raises(ValueError, match="gives 0o"):
        SymmetricProduct(o3.Irreps("4x0e"), o3.Irreps("4x0e+4x0o"), 2, 3)


MANY_BODY = {**HPARAMS, "correlation": 3}


class TestCorrelation2(ModelTestSuite):
    family = "equivariant"
    hparams = {**HPARAMS, "correlation": 2}
    # products of the basis add float32 rounding (stress ~1.3e-5); exactness is the float64 test
    tol32 = 1e-4


class TestCorrelation3(TestCorrelation2):
    hparams = MANY_BODY


class TestCorrelation3EdgesL3(TestCorrelation2):
    """l = 1 node features, an l = 3 atomic basis and per-layer readouts (MACE-small-like)."""

    hparams = {**MANY_BODY, "l_max_edges": 3, "readout_every_layer": True}


class TestCorrelation3Lmax2(TestCorrelation2):
    hparams = {**MANY_BODY, "l_max": 2, "num_channels": 4}


class TestCorrelation3NeuralAtoms(TestCorrelation2):
    hparams = {**MANY_BODY, "neural_atoms": {**NA, "pooling": "equivariant"},
               "neural_atoms_after": [0, 1]}  # fmt: skip
    local = False
