"""pytest fixtures of eqna's shipped test suite; import them into a ``conftest.py``::

from eqna.testing.fixtures import float_dtype  # noqa: F401
"""

import pytest
import torch


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def float_dtype(request) -> torch.dtype:
    """Each physics test runs in both precisions (as e3nn's own suite does)."""
    return request.param
