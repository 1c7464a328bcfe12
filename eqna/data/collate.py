"""Batching of variable-size graphs into one disjoint graph."""

from collections.abc import Sequence

import torch

from eqna.data import keys


def collate(graphs: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate graphs; edge indices are offset and ``batch``/``ptr`` are added.

    Every graph must carry the same keys (a label present in one frame and not in another is
    stored as zeros with a ``has_*`` flag by the dataset, so this holds).
    """
    num_atoms = torch.cat([g[keys.NUM_ATOMS] for g in graphs])
    ptr = torch.zeros(len(graphs) + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(num_atoms, 0)
    batch = {}
    for key in graphs[0]:
        if key == keys.EDGE_INDEX:
            batch[key] = torch.cat([g[key] + ptr[i] for i, g in enumerate(graphs)], dim=1)
        else:
            batch[key] = torch.cat([g[key] for g in graphs], dim=0)
    batch[keys.BATCH] = torch.repeat_interleave(torch.arange(len(graphs)), num_atoms)
    batch[keys.PTR] = ptr
    return batch


def to_device(
    batch: dict[str, torch.Tensor], device: torch.device | str, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Move a batch to ``device`` and cast its floating tensors to ``dtype``."""
    return {
        k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)
        for k, v in batch.items()
    }
