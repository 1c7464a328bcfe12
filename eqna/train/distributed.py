"""Training on several processes with Lightning's DDP: which process this is, how the data is
shared out, and the decisions every process must take together.

Lightning does the distribution (process groups, gradient all-reduce, launching under
``torchrun`` or SLURM); eqna supplies samplers of its own (``use_distributed_sampler=False``):

- training: every process draws the same permutation per epoch and takes every
  ``world``-th structure from its rank on, so one step of ``world`` processes with batch b
  sees exactly the structures of one step of a single process with batch ``world * b``;
  shorter shards repeat their first structures so every process takes the same number of
  steps (DDP needs that), as ``DistributedSampler`` does;
- validation: every structure exactly once (no padding; shards may differ by one), the
  error sums all-reduced before the metrics are computed.

Decisions taken from a clock (stage two, time-based checkpoints, a stop signal) are rank
0's, broadcast, so no process waits on a collective the others skipped.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from eqna.data.batching import rank_and_world


def rank_zero_decision(trainer, value):
    """``value`` as rank 0 has it, on every process (itself when there is one process)."""
    if trainer.world_size <= 1:
        return value
    return trainer.strategy.broadcast(value, src=0)


class ShuffledShard(torch.utils.data.Sampler):
    """Training order: a shuffled epoch (the sampler's own ``generator``, the same on every
    process), this process's share of it; the whole epoch in a single process."""

    def __init__(self, base: torch.utils.data.Sampler, size: int):
        self.base, self.size = base, size  # base: eqna's shuffling sampler (one epoch's order)
        self.generator = getattr(base, "generator", None)

    def __iter__(self):
        rank, world = rank_and_world()
        if world == 1:
            yield from self.base
            return
        order = np.fromiter(self.base, dtype=np.int64, count=self.size)
        per_rank = math.ceil(len(order) / world)
        padded = np.concatenate([order, order[: per_rank * world - len(order)]])
        yield from padded[rank::world].tolist()

    def __len__(self) -> int:
        _, world = rank_and_world()
        return math.ceil(self.size / world)


class Shard(torch.utils.data.Sampler):
    """Evaluation order: structures ``rank, rank + world, ...``; together every one once."""

    def __init__(self, size: int):
        self.size = size

    def __iter__(self):
        rank, world = rank_and_world()
        yield from range(rank, self.size, world)

    def __len__(self) -> int:
        rank, world = rank_and_world()
        return len(range(rank, self.size, world))


def shard(base: torch.utils.data.Sampler | None, size: int) -> torch.utils.data.Sampler:
    """The sampler of a loader for ``size`` structures: this process's share of ``base``'s
    shuffled order (training), or of the structures in order (``base`` None: evaluation)."""
    return Shard(size) if base is None else ShuffledShard(base, size)


def all_reduce_max(trainer, values: list[float]) -> list[float]:
    """The largest of each of ``values`` over every process (themselves for one process)."""
    if trainer.world_size <= 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=trainer.strategy.root_device)
    return trainer.strategy.reduce(tensor, reduce_op="max").tolist()


def all_reduce_sums(trainer, values: list[float]) -> list[float]:
    """``values`` summed over every process (float64; themselves for one process)."""
    if trainer.world_size <= 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=trainer.strategy.root_device)
    return trainer.strategy.reduce(tensor, reduce_op="sum").tolist()
