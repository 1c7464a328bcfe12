"""Clebsch-Gordan tables exact in the model's dtype.

e3nn's compiled tensor products keep their Wigner 3j tables as buffers named
``_w3j_{l1}_{l2}_{l3}``, computed once in the default dtype (float32). Cast to float64 they
keep float32 rounding (~1e-8), which breaks exact equivariance for l >= 2 couplings. After
every cast or state load the tables are recomputed in the buffer's own dtype.
"""

import re

import torch
from e3nn import o3

_W3J = re.compile(r"_w3j_(\d+)_(\d+)_(\d+)$")


@torch.no_grad()
def refresh_wigner_3j(module: torch.nn.Module) -> None:
    """Recompute every e3nn Wigner 3j buffer of ``module`` in its own dtype and device."""
    for owner in module.modules():
        for name, buffer in owner.named_buffers(recurse=False):
            match = _W3J.match(name)
            if match is not None and buffer.is_floating_point():
                exact = o3.wigner_3j(*map(int, match.groups()), dtype=torch.float64)
                buffer.copy_(exact.to(buffer.device, buffer.dtype))
