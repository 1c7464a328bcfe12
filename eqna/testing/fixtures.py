"""pytest fixtures of eqna's shipped test suite; import them into a ``conftest.py``::

from eqna.testing.fixtures import float_dtype  # noqa: F401
"""

import pytest
import torch


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def float_dtype(request) -> torch.dtype:
    """Each physics test runs in both precisions (as e3nn's own suite does)."""
    return request.param


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests: tiny models gain nothing from threads, and on a
    busy 2-core machine a 2-thread pool waits on its descheduled twin. Use it with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
