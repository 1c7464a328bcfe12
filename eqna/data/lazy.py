"""Datasets that read a packed store (:mod:`eqna.data.store`) one structure at a time.

:class:`StoreFrames` is a sequence of the store's structures (all, or a subset by index) that
reads each on access; :class:`LazyGraphDataset` builds a structure's graph when a DataLoader
asks for it, in the main process or in a worker, with the checks and the graph code of
:class:`eqna.data.datasets.GraphDataset`: for the same structures, the same graphs. Stored
neighbour lists are used where the store was packed with the model's cutoff.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase import Atoms

from eqna.data import keys
from eqna.data.errors import DataError
from eqna.data.graph import GraphSpec
from eqna.data.labels import LabelKeys, extract_labels
from eqna.data.store import Store
from eqna.data.validation import GeometryLimits, check_before_search, check_distances

_LABEL_FLAGS = {"energy": "has_energy", "forces": "has_forces", "stress": "has_stress"}


class StoreFrames(Sequence):
    """The structures ``indices`` (default: all) of ``store``, read on access."""

    def __init__(self, store: Store, indices: np.ndarray | None = None):
        self.store = store
        self.indices = np.arange(len(store)) if indices is None else np.asarray(indices, np.int64)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return StoreFrames(self.store, self.indices[k])
        return self.store.atoms(int(self.indices[k]))

    def subset(self, positions: Sequence[int]) -> StoreFrames:
        """The frames at ``positions`` of this sequence."""
        return StoreFrames(self.store, self.indices[np.asarray(positions, np.int64)])

    def isolated(self) -> np.ndarray:
        """[len] bool: isolated-atom reference frames (as :func:`is_isolated_atom` found them)."""
        return self.store.index()["isolated"][self.indices].astype(bool)

    def has_label(self, label: str) -> bool:
        """Whether any of these frames has an energy, forces or stress label."""
        return bool(self.store.index()[_LABEL_FLAGS[label]][self.indices].any())

    def where(self, k: int) -> str:
        return self.store.where(int(self.indices[k]))

    def elements(self, block: int = 1 << 16) -> frozenset:
        """Atomic numbers in these frames: the numbers column read ``block`` store structures
        at a time (memory bounded by the block, not by the store), no graphs."""
        ptr, numbers = self.store.index()["atom_ptr"], self.store.column("numbers")
        chosen, found = np.unique(self.indices), set()
        bounds = np.searchsorted(chosen, np.arange(0, len(ptr) - 1 + block, block))
        for first, last in zip(bounds[:-1], bounds[1:]):
            part = chosen[first:last]  # chosen frames of one block of the store
            if len(part) == 0:
                continue
            lo, hi = int(ptr[part[0]]), int(ptr[part[-1] + 1])
            edges = np.zeros(hi - lo + 1, dtype=np.int32)  # +1 where a chosen frame starts,
            np.add.at(edges, ptr[part] - lo, 1)  # -1 where it ends: the running sum marks
            np.add.at(edges, ptr[part + 1] - lo, -1)  # the chosen frames' atoms
            selected = np.cumsum(edges[:-1]) > 0
            found.update(np.unique(numbers[lo:hi][selected]).tolist())
        return frozenset(found)


class LazyGraphDataset(torch.utils.data.Dataset):
    """:class:`eqna.data.datasets.GraphDataset` over :class:`StoreFrames`, graphs built on
    access (nothing but the index in memory)."""

    def __init__(
        self,
        structures: StoreFrames,
        spec: GraphSpec,
        label_keys: LabelKeys,
        name: str,
        frame_ids: Sequence[int] | None = None,
        limits: GeometryLimits | None = GeometryLimits(),  # noqa: B008 (frozen, shared safely)
    ):
        self.structures, self.spec, self.label_keys, self.name = structures, spec, label_keys, name
        self.limits = limits
        n = len(structures)
        self.frame_ids = np.arange(n) if frame_ids is None else np.asarray(frame_ids, np.int64)
        cutoff = structures.store.cutoff
        if cutoff is not None and cutoff != spec.cutoff:
            raise DataError(
                f"{structures.store.path}: packed with neighbour lists for r_max {cutoff:g} Å, "
                f"but the model's r_max is {spec.cutoff:g} Å; pack again with --cutoff "
                f"{spec.cutoff:g} (or without --cutoff, to search neighbours when reading)"
            )
        self._stored_edges = cutoff is not None

    def __len__(self) -> int:
        return len(self.structures)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        atoms: Atoms = self.structures[k]
        where = f"{self.name} frame {self.frame_ids[k]} ({self.structures.where(k)}): "
        labels = extract_labels(atoms, self.label_keys, where)
        if self.limits is not None:
            check_before_search(atoms, self.spec.cutoff, self.limits, where)
        store = self.structures.store
        stored = store.neighbours(int(self.structures.indices[k])) if self._stored_edges else None
        graph = self.spec.graph(atoms, labels, where, neighbours=stored)
        if self.limits is not None:
            edges = (graph[keys.EDGE_INDEX].numpy(), graph[keys.EDGE_CELL_SHIFT].numpy())
            check_distances(atoms, *edges, self.limits, where)
        return graph

    @property
    def graphs(self) -> _Graphs:
        """The graphs as a sequence, each built when reached (one pass, bounded memory)."""
        return _Graphs(self)


class _Graphs(Sequence):
    def __init__(self, dataset: LazyGraphDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self.dataset[i] for i in range(*k.indices(len(self)))]
        return self.dataset[k]


def make_dataset(structures, spec: GraphSpec, label_keys: LabelKeys, name: str, frame_ids=None,
                 limits: GeometryLimits | None = GeometryLimits()):  # noqa: B008 # fmt: skip
    """A :class:`LazyGraphDataset` for a store's frames, else an in-memory ``GraphDataset``."""
    from eqna.data.datasets import GraphDataset

    kind = LazyGraphDataset if isinstance(structures, StoreFrames) else GraphDataset
    return kind(structures, spec, label_keys, name, frame_ids=frame_ids, limits=limits)
