"""Edge geometry computed inside the model, so it stays differentiable in positions and cell."""

import torch

from eqna.data import keys


def edge_vectors(data: dict[str, torch.Tensor]) -> torch.Tensor:
    """r_ij = pos[j] - pos[i] + shift_ij @ cell[graph(i)]; returns [e, 3]. A zero
    ``EDGE_DISPLACEMENT`` in ``data`` is added, so that dE/dr_ij can be read on it."""
    pos = data[keys.POSITIONS]
    centre, neighbour = data[keys.EDGE_INDEX]
    cell = data[keys.CELL][data[keys.BATCH][centre]]  # [e, 3, 3]
    shift = torch.einsum("ei,eij->ej", data[keys.EDGE_CELL_SHIFT], cell)
    vectors = pos[neighbour] - pos[centre] + shift
    if keys.EDGE_DISPLACEMENT in data:
        vectors = vectors + data[keys.EDGE_DISPLACEMENT]
    return vectors


def scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Sum rows of ``src`` [m, ...] into ``size`` bins given by ``index`` [m]."""
    if isinstance(size, int) and size == 1:
        # one bin (one graph's energy): a plain sum, which AOTInductor's CPU code generation
        # compiles, where it fails on a vectorised scatter into one element (torch 2.13)
        return src.sum(0, keepdim=True)
    out = src.new_zeros((size,) + src.shape[1:])
    return out.index_add_(0, index, src)
