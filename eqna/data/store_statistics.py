"""The training statistics' one pass over a store, computed in DataLoader workers and kept in
the store (``statistics/<key>.npz``), so a second training on the same split (another run, or
another DDP process) reads them instead of building every graph again.

Under a multi-process launch (torchrun, SLURM, Lightning's DDP launcher) the first process of
each node computes the summary and the others of that node wait for it in the store, so one
node builds the graphs once (several nodes sharing one file system each compute the same
summary; the file is replaced atomically, whichever is written last is the same).

The key is a hash of what the summary depends on: the structures summarized (store indices)
and the graph spec (cutoff, element order, neighbour cap). The E0 mode, loss weights and the
rest of the config do not enter: the summary is their input, not their result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import numpy as np
import torch

from eqna.data.launch import launch_local_rank, launch_world_size
from eqna.data.statistics import GraphSummary, summarize_rows, summary_row

LOG = logging.getLogger("eqna")
FOLDER = "statistics"
WAIT_SECONDS = 3600.0  # for the node's first process; then this process computes it itself
_POLL_SECONDS = 0.5
_FIELDS = ("counts", "energy", "has_energy", "has_forces", "forces_sq", "num_edges", "weight")


def store_summary(
    dataset, chosen: np.ndarray, num_elements: int, workers: int, wait: bool | None = None
) -> GraphSummary:
    """The summary of ``dataset[chosen]`` (a LazyGraphDataset), from the store's cache or one
    pass over its graphs (then cached).

    ``wait``: read the summary another process is computing rather than compute it; by
    default, when this is not the first process of its node in a multi-process launch.
    """
    store = dataset.structures.store
    indices = dataset.structures.indices[chosen]
    spec = dataset.spec
    identity = json.dumps([spec.cutoff, list(spec.elements), spec.max_num_neighbors])
    digest = hashlib.sha256(identity.encode() + indices.astype(np.int64).tobytes()).hexdigest()
    path = store.path / FOLDER / f"{digest[:32]}.npz"
    if wait is None:
        wait = launch_world_size() > 1 and launch_local_rank() > 0
    if path.is_file() or (wait and _waited_for(path, store.path)):
        return _load(path)
    rows = _SummaryRows(dataset, chosen, num_elements)
    loader = torch.utils.data.DataLoader(
        rows,
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_sent,  # numpy stays numpy: no tensor, no shared-memory handle each
        generator=torch.Generator(),  # its own: the global RNG (model init) stays untouched
    )
    summary = summarize_rows(loader, num_elements)
    try:
        _save(summary, path)
    except OSError as err:  # a read-only store still trains; it only cannot remember
        LOG.warning("%s: statistics not cached (%s)", store.path, err)
    return summary


class _SummaryRows(torch.utils.data.Dataset):
    """Summary rows of a dataset's graphs, built where the DataLoader runs (its workers)."""

    def __init__(self, dataset, positions: np.ndarray, num_elements: int):
        self.dataset, self.positions, self.num_elements = dataset, positions, num_elements

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> dict:
        return summary_row(self.dataset[int(self.positions[k])], self.num_elements)


def _waited_for(path, store_path) -> bool:
    """Whether ``path`` appeared within WAIT_SECONDS (never, in a store nobody can write)."""
    if not _writable(store_path):
        return False
    LOG.info("%s: waiting for the statistics from the node's first process", store_path)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if path.is_file():
            return True
        time.sleep(_POLL_SECONDS)
    LOG.warning("%s: no statistics after %.0f s; computing them here", store_path, WAIT_SECONDS)
    return False


def _writable(folder) -> bool:
    return os.access(folder, os.W_OK)


def _as_sent(row: dict) -> dict:
    return row


def _save(summary: GraphSummary, path) -> None:
    path.parent.mkdir(exist_ok=True)
    arrays = {name: getattr(summary, name) for name in _FIELDS}
    arrays["numbers"] = np.asarray(sorted(summary.numbers), dtype=np.int64)
    if summary.targets is not None:
        arrays["targets"] = summary.targets
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load(path) -> GraphSummary:
    with np.load(path) as data:
        arrays = {name: data[name] for name in _FIELDS}
        targets = data["targets"] if "targets" in data else None
        numbers = frozenset(int(z) for z in data["numbers"])
    return GraphSummary(**arrays, numbers=numbers, targets=targets)
