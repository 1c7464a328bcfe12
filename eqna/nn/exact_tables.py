"""Clebsch-Gordan tables exact in the model's dtype.

A table computed once in float32 and cast to float64 keeps float32 rounding (~1e-8), which
breaks exact equivariance for l >= 2 couplings. e3nn's compiled tensor products keep their
Wigner 3j tables as buffers named ``_w3j_{l1}_{l2}_{l3}``, made in the default dtype; eqna's
own modules with tables keep float64 originals and a ``refresh_exact()`` method. After every
cast or state load, :func:`refresh_exact_tables` rewrites both in the buffers' own dtype.
"""

import re

import torch
from e3nn import o3

_W3J = re.compile(r"_w3j_(\d+)_(\d+)_(\d+)$")


@torch.no_grad()
def refresh_exact_tables(module: torch.nn.Module) -> None:
    """Recompute every Clebsch-Gordan table of ``module`` in its own dtype and device."""
    for owner in module.modules():
        if owner is not module and hasattr(owner, "refresh_exact"):
            owner.refresh_exact()
        for name, buffer in owner.named_buffers(recurse=False):
            match = _W3J.match(name)
            if match is not None and buffer.is_floating_point():
                exact = o3.wigner_3j(*map(int, match.groups()), dtype=torch.float64)
                buffer.copy_(exact.to(buffer.device, buffer.dtype))
