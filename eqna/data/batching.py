"""Batches bounded by atoms as well as by structures, and which process takes which batch.

With mixed sizes (a 5-atom molecule beside a 500-atom cell) a fixed number of structures per
batch gives steps whose memory differs a hundredfold; :class:`AtomBudgetBatches` closes a
batch before it would pass ``max_atoms`` (or ``batch_size`` structures), walking the epoch's
order, so memory per step is bounded.

Under DDP every process plans the same batches from the same order and takes every
``world``-th one, the short processes repeating their first batches so all take the same
number of steps (DDP waits for every process at each step).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from eqna.data import keys
from eqna.data.errors import DataError


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the current process group; (0, 1) outside one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def structure_sizes(dataset) -> np.ndarray:
    """[n] atoms per structure, without building a store's graphs."""
    if hasattr(dataset, "structures") and hasattr(dataset.structures, "store"):
        frames = dataset.structures
        ptr = frames.store.index()["atom_ptr"]
        return ptr[frames.indices + 1] - ptr[frames.indices]
    return np.asarray([int(g[keys.NUM_ATOMS]) for g in dataset.graphs], dtype=np.int64)


class AtomBudgetBatches(torch.utils.data.Sampler):
    """Index lists of at most ``batch_size`` structures and ``max_atoms`` atoms.

    ``order``: the sampler giving each epoch's order (eqna's shuffle), or None for the
    structures in order; ``pad``: under DDP, repeat batches so every process takes as many
    (training), or not (evaluation: every structure once). ``len()`` is the number of
    batches of the coming epoch: it plans that epoch from a copy of the order's generator,
    which the epoch itself then draws.
    """

    def __init__(self, sizes: np.ndarray, batch_size: int, max_atoms: int, order=None,
                 name: str = "data", pad: bool = True):  # fmt: skip
        self.sizes, self.batch_size, self.max_atoms, self.order = (
            sizes,
            batch_size,
            max_atoms,
            order,
        )
        self.pad = pad  # training: equal step counts; evaluation: every structure once
        too_large = np.flatnonzero(sizes > max_atoms)
        if len(too_large):
            k = int(too_large[0])
            raise DataError(
                f"{name}: structure {k} has {int(sizes[k])} atoms, more than "
                f"data.max_atoms_per_batch={max_atoms}; raise it to at least {int(sizes.max())}"
            )
        self.generator = getattr(order, "generator", None)

    def _plan(self, indices) -> list[list[int]]:
        batches, batch, atoms = [], [], 0
        for i in indices:
            size = int(self.sizes[i])
            if batch and (len(batch) == self.batch_size or atoms + size > self.max_atoms):
                batches.append(batch)
                batch, atoms = [], 0
            batch.append(int(i))
            atoms += size
        if batch:
            batches.append(batch)
        return batches

    def _epoch(self) -> list[list[int]]:
        indices = range(len(self.sizes)) if self.order is None else list(self.order)
        batches = self._plan(indices)
        rank, world = rank_and_world()
        if world == 1:
            return batches
        if not self.pad:
            return batches[rank::world]
        per_rank = math.ceil(len(batches) / world)
        padded = batches + batches[: per_rank * world - len(batches)]
        return padded[rank::world]

    def __iter__(self):
        yield from self._epoch()

    def __len__(self) -> int:
        if self.generator is None:
            return len(self._epoch())
        state = self.generator.get_state()
        try:
            return len(self._epoch())
        finally:
            self.generator.set_state(state)
