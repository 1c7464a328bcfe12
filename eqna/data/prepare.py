"""From the ``data`` config section to datasets, loaders and the statistics the model stores.

``cfg`` arguments are the validated ``data`` section (:class:`eqna.train.config.DataConfig`);
this room sits below training and only reads its attributes.
"""

from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from ase.data import atomic_numbers, chemical_symbols

from eqna.data import keys as graph_keys
from eqna.data.ase_db import is_ase_db
from eqna.data.batching import AtomBudgetBatches, structure_sizes
from eqna.data.class_labels import class_counts, declared_classes, infer_classes
from eqna.data.collate import collate, to_device
from eqna.data.coverage import check_elements_trained, check_requested, check_weights
from eqna.data.datasets import (
    DataError,
    GraphDataset,
    LabelKeys,
    extract_labels,
    is_isolated_atom,
    read_structures,
    resolve_path,
    split_indices,
)
from eqna.data.graph import GraphSpec
from eqna.data.lazy import LazyGraphDataset, StoreFrames, make_dataset
from eqna.data.statistics import (
    GraphSummary,
    average_energies,
    average_num_neighbors,
    energy_scale_shift,
    isolated_atom_energies,
    least_squares_energies,
    summarize,
    target_statistics,
)
from eqna.data.store import StoreKeys
from eqna.data.store_statistics import store_summary
from eqna.data.validation import GeometryLimits, check_before_search


@dataclass
class PreparedData:
    """Datasets of one training run and the data-derived model hyperparameters."""

    train: GraphDataset  # or LazyGraphDataset (a store), as valid and test
    valid: GraphDataset
    test: GraphDataset | None
    # elements, atomic_energies, avg_num_neighbors, scale, shift; or target_mean, target_std;
    # or classes and class_counts (classifiers)
    derived: dict


def target_keys(cfg) -> tuple[str, ...]:
    """The ``atoms.info`` keys of the per-structure target(s); empty for potentials."""
    if cfg.target_key is None:
        return ()
    return (cfg.target_key,) if isinstance(cfg.target_key, str) else tuple(cfg.target_key)


def _label_keys(cfg, classes: tuple[str, ...] | None = None, multilabel: bool = False):
    return LabelKeys(
        cfg.energy_key,
        cfg.forces_key,
        cfg.stress_key,
        target_keys(cfg),
        virial=cfg.virial_key,
        weight=cfg.weight_key,
        classes=classes,
        multilabel=multilabel,
    )


def _classes(cfg, frames, classifier: str, known: list[str] | None) -> tuple[str, ...]:
    """The class names of a classifier: a pretrained model's, ``data.classes``, or those of
    the training frames (:mod:`eqna.data.class_labels`)."""
    if isinstance(frames, StoreFrames):
        raise DataError(
            f"{cfg.train}: classifiers train from files or databases, not from eqna-pack "
            "stores (their targets are numbers; class names are not packed)"
        )
    multilabel = classifier == "multilabel"
    declared = declared_classes(cfg.classes)
    if known is not None:
        if declared is not None and tuple(declared) != tuple(known):
            raise DataError(
                f"data.classes {list(declared)} differ from the pretrained model's "
                f"{list(known)}: a fine-tuned classifier keeps its classes"
            )
        return tuple(known)
    if declared is not None:
        return declared
    return infer_classes(frames, target_keys(cfg)[0], multilabel, cfg.train)


def geometry_limits(cfg) -> GeometryLimits:
    """The geometry checks the ``data`` section asks for."""
    return GeometryLimits(cfg.min_distance, cfg.max_neighbors_per_atom)


def _energy_reader(spec: str, keys: LabelKeys):
    return lambda atoms: float(extract_labels(atoms, keys, f"{spec}: ")["energy"])


def _atomic_energies(cfg, isolated, train: GraphSummary, elements, known=None) -> list[float]:
    if known is not None:
        if cfg.e0s == "auto" and not isolated:
            return list(known)
        present = sorted(train.numbers)
        columns = [list(elements).index(z) for z in present]
        subset = replace(train, counts=train.counts[:, columns])
        new = dict(zip(present, _atomic_energies(cfg, isolated, subset, present)))
        return [new.get(z, e0) for z, e0 in zip(elements, known)]
    keys = _label_keys(cfg)
    mode = cfg.e0s
    if isinstance(mode, dict):
        given = {atomic_numbers[s]: float(e) for s, e in mode.items()}
        missing = [chemical_symbols[z] for z in elements if z not in given]
        if missing:
            raise DataError(f"data.e0s: no energy given for element(s) {', '.join(missing)}")
        return [given[z] for z in elements]
    if mode == "average":
        return list(average_energies(train, elements).values())
    if mode not in ("auto", "isolated", "least_squares"):  # a file of isolated atoms
        isolated = read_structures(mode)
        return list(isolated_atom_energies(isolated, elements, _energy_reader(mode, keys)).values())
    if mode == "isolated" or (mode == "auto" and isolated):
        if not isolated and mode == "isolated":
            raise DataError(
                f"{cfg.train}: data.e0s is 'isolated' but the file has no isolated-atom frames"
            )
        return list(
            isolated_atom_energies(isolated, elements, _energy_reader(cfg.train, keys)).values()
        )
    return list(least_squares_energies(train, elements, f"{cfg.train}: ").values())


def _read_source(cfg, spec: str):
    """The frames of one of data.train/valid/test, ``data.select`` applied to a database; a
    store is refused unless it was packed with the config's label keys."""
    frames = read_structures(spec, cfg.select if is_ase_db(resolve_path(spec)) else None)
    if isinstance(frames, StoreFrames):
        wanted = StoreKeys(cfg.energy_key, cfg.forces_key, cfg.stress_key, cfg.virial_key,
                           cfg.weight_key, target_keys(cfg))  # fmt: skip
        differ = frames.store.keys.mismatches(wanted)
        if differ:
            raise DataError(
                f"{spec}: the store was packed with other label keys ({'; '.join(differ)}); "
                "pack it again with the config's keys (eqna-pack --energy-key ...)"
            )
        _check_version(frames.store)
    return frames


def _check_version(store) -> None:
    from eqna import __version__

    packed = store.manifest["eqna_version"]
    if packed != __version__:
        raise DataError(
            f"{store.path}: packed by eqna {packed}, this is eqna {__version__}; pack it again "
            "(eqna-pack) so that its labels and checks are this version's"
        )


def _elements_of(frames) -> set[int]:
    if isinstance(frames, StoreFrames):
        return set(frames.store.manifest["elements"])
    return {int(z) for a in frames for z in a.numbers}


def _take(frames, positions: list[int]):
    """The frames at ``positions``: a list, or for a store a view that reads on access."""
    if isinstance(frames, StoreFrames):
        return frames.subset(positions)
    return [frames[i] for i in positions]


def _dataset_maker(spec: GraphSpec, keys: LabelKeys, limits: GeometryLimits):
    """``make(structures, name, frame_ids=None)``: a GraphDataset, or a LazyGraphDataset for
    a store's frames."""

    def make(structures, name, frame_ids=None):
        return make_dataset(structures, spec, keys, name, frame_ids, limits)

    return make


def _check_selection(cfg) -> None:
    specs = [s for s in (cfg.train, cfg.valid, cfg.test) if s]
    if cfg.select is not None and not any(is_ase_db(resolve_path(s)) for s in specs):
        raise DataError(
            f"data.select ({cfg.select!r}) selects rows of an ASE database, but none of "
            f"data.train/valid/test is one ({', '.join(specs)})"
        )


def _read(cfg, keys: LabelKeys, training) -> tuple:
    """Training frames (isolated atoms apart) with their frame numbers, the isolated-atom
    frames, and the valid/test files' frames; labels the loss needs checked at once."""
    _check_selection(cfg)
    frames = _read_source(cfg, cfg.train)
    if training is not None and not keys.properties:
        check_requested(frames, keys, training, cfg.train)
    if keys.properties:
        reference = np.zeros(len(frames), dtype=bool)
    elif isinstance(frames, StoreFrames):
        reference = frames.isolated()
    else:
        reference = np.array([is_isolated_atom(a) for a in frames], dtype=bool)
    isolated = [frames[int(i)] for i in np.flatnonzero(reference)]
    for frame, atoms in zip(np.flatnonzero(reference).tolist(), isolated):
        # no graph is built of them: their positions are checked here
        check_before_search(atoms, 0.0, GeometryLimits(), f"{cfg.train} frame {frame}: ")
    ids = np.flatnonzero(~reference)  # numpy, not a list: a million frames stay 8 MB
    if cfg.max_train_frames is not None:
        ids = ids[: cfg.max_train_frames]
    extra = {
        name: _read_source(cfg, spec)
        for name, spec in (("valid", cfg.valid), ("test", cfg.test))
        if spec
    }
    return frames, ids, isolated, extra


def _datasets(cfg, frames, ids, extra, make) -> tuple:
    """Train, valid and test :class:`GraphDataset` (files where given, else random splits)."""
    train_idx, valid_idx, test_idx = split_indices(
        len(ids),
        0.0 if cfg.valid else cfg.valid_fraction,
        0.0 if cfg.test else cfg.test_fraction,
        cfg.split_seed,
    )
    if cfg.bootstrap_seed is not None:  # sorted: the loader shuffles, the store reads in order
        rng = np.random.default_rng(cfg.bootstrap_seed)
        train_idx = np.sort(rng.choice(np.asarray(train_idx), size=len(train_idx), replace=True))

    def from_split(indices):
        chosen = ids[np.asarray(indices, dtype=np.int64)]
        return make(_take(frames, chosen), name=cfg.train, frame_ids=chosen)

    train = from_split(train_idx)
    valid = make(extra["valid"], name=cfg.valid) if cfg.valid else from_split(valid_idx)
    if cfg.test:
        test = make(extra["test"], name=cfg.test)
    else:
        test = from_split(test_idx) if len(test_idx) else None
    if len(valid) == 0:
        raise DataError(
            f"{cfg.train}: the validation split is empty; raise "
            "data.valid_fraction or give data.valid"
        )
    return train, valid, test


def _summary(cfg, train, num_elements: int) -> GraphSummary:
    """The training structures' summary, or that of ``data.statistics_frames`` of them drawn
    with ``data.split_seed``."""
    n, wanted = len(train), cfg.statistics_frames
    chosen = np.arange(n)
    if wanted is not None and wanted < n:
        chosen = np.sort(np.random.default_rng(cfg.split_seed).choice(n, wanted, replace=False))
    if not isinstance(train, LazyGraphDataset):
        return summarize((train[int(i)] for i in chosen), num_elements)
    return store_summary(train, chosen, num_elements, cfg.num_workers)


def _trained_elements(train, summary: GraphSummary) -> frozenset:
    """Atomic numbers in any training structure (not only the statistics' subsample)."""
    if isinstance(train, LazyGraphDataset):
        return train.structures.elements()
    return frozenset(int(z) for g in train.graphs for z in g[graph_keys.ATOMIC_NUMBERS].tolist())


def _check_coverage(cfg, summary, valid, test, trained: frozenset) -> None:
    split = f"{cfg.train} (validation split)"
    others = {cfg.valid or split: valid}
    if test is not None:
        others[cfg.test or f"{cfg.train} (test split)"] = test
    others = {  # a store's numbers column answers without building its graphs
        name: dataset
        for name, dataset in others.items()
        if not (isinstance(dataset, LazyGraphDataset) and dataset.structures.elements() <= trained)
    }
    if not cfg.target_key:  # potentials: an untrained element has no E0 and no interactions;
        check_elements_trained(trained, others)  # property features may carry over
    check_weights(summary.weight, cfg.weight_key, cfg.train)


def prepare_data(
    cfg,
    r_max: float,
    elements: list[int] | None = None,
    *,
    max_num_neighbors: int | None = None,
    extensive: bool = False,
    training=None,
    known_e0s: list[float] | None = None,
    classifier: str | None = None,
    known_classes: list[str] | None = None,
):
    """Read, check, split and featurise the data; compute E0s, scale, shift and neighbour
    count, or, with ``data.target_key``, the target mean and std.

    Args:
        cfg: the ``data`` config section.
        r_max: cutoff radius of the model, Å.
        elements: atomic numbers the model must know; default: those in the files.
        max_num_neighbors: store only each atom's nearest neighbours (property models).
        extensive: the target is a sum over atoms (sum pooling): statistics per atom.
        training: the ``training`` section; its loss weights say which labels the training
            file must hold (None: not checked).
        known_e0s: E0s per ``elements`` already known (a fine-tuned model's): kept unless
            ``data.e0s`` gives new ones, which replace them for the elements they cover.
        classifier: ``classification`` or ``multilabel`` for a classifier (the target is a
            class label; ``derived["classes"]`` holds the class names), else None.
        known_classes: a fine-tuned classifier's class names, kept.

    Raises:
        DataError: unreadable, unlabelled or inconsistent data, named by file and frame.
    """
    keys = _label_keys(cfg)
    frames, ids, isolated, extra = _read(cfg, keys, training)
    classes = None
    if classifier is not None:
        classes = _classes(cfg, frames, classifier, known_classes)
        keys = _label_keys(cfg, classes, classifier == "multilabel")
    if elements is None:
        elements = sorted(set().union(*(_elements_of(f) for f in (frames, *extra.values()))))
    spec = GraphSpec(r_max, elements, max_num_neighbors)
    make = _dataset_maker(spec, keys, geometry_limits(cfg))
    train, valid, test = _datasets(cfg, frames, ids, extra, make)
    summary = _summary(cfg, train, len(elements))  # the one pass the statistics need
    try:
        _check_coverage(cfg, summary, valid, test, _trained_elements(train, summary))
    except DataError as err:
        if cfg.bootstrap_seed is None:
            raise
        raise DataError(
            f"{err} (the bootstrap resample, data.bootstrap_seed={cfg.bootstrap_seed}, drew no "
            "frame holding them: another seed or more training data)"
        ) from err
    derived = {"elements": elements, "avg_num_neighbors": average_num_neighbors(summary)}
    if classes is not None:
        derived["classes"] = list(classes)
        derived["class_counts"] = class_counts(summary.targets, len(classes), keys.multilabel)
    elif keys.properties:
        mean, std = target_statistics(summary, extensive)
        derived.update(target_mean=mean, target_std=std)
    else:
        e0s = _atomic_energies(cfg, isolated, summary, elements, known_e0s)
        shift, scale = energy_scale_shift(summary, e0s)
        derived.update(atomic_energies=e0s, scale=scale, shift=shift)
    return PreparedData(train, valid, test, derived)


def make_loader(
    dataset,
    batch_size: int,
    dtype: torch.dtype,
    shuffle: bool,
    seed: int = 0,
    workers: int = 0,
    shard=None,
    max_atoms: int | None = None,
):
    """DataLoader that batches graphs and casts floating tensors to ``dtype``.

    ``workers`` > 0 builds and batches graphs in that many persistent worker processes (a
    store's graphs are built on access, so that is where the time goes); the batches are the
    same as with none. The order comes from ``loader.sampler.generator`` alone (workers draw
    their seeds from another), so it does not depend on ``workers``. ``shard(sampler, n)``
    replaces the sampler (None: in order) by one of this process's share of the structures
    (:func:`eqna.train.distributed.shard`). ``max_atoms`` also closes a batch before it
    would hold more atoms (:class:`eqna.data.batching.AtomBudgetBatches`, which shares the
    batches out under DDP itself).
    """
    order = torch.Generator().manual_seed(seed)
    sampler = _Shuffle(dataset, generator=order) if shuffle else None
    batching = {"batch_size": batch_size}
    if max_atoms is not None:
        sizes = structure_sizes(dataset)
        name = getattr(dataset, "name", "data")
        batches = AtomBudgetBatches(sizes, batch_size, max_atoms, sampler, name, pad=shuffle)
        sampler, batching = None, {"batch_sampler": batches}
    elif shard is not None:
        sampler = shard(sampler, len(dataset))
    return torch.utils.data.DataLoader(
        dataset,
        **batching,
        sampler=sampler,
        generator=torch.Generator().manual_seed(seed + 1),
        collate_fn=partial(_batch, dtype=dtype),
        num_workers=workers,
        persistent_workers=workers > 0,
    )


class _Shuffle(torch.utils.data.RandomSampler):
    """Each epoch's order is that of ``DataLoader(shuffle=True, generator=g)`` without workers,
    eqna's loader until it had workers (that loader drew a worker seed from ``g`` first), so
    earlier runs train on the same batches; here it holds for any number of workers."""

    def __iter__(self):
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        # RandomSampler's draws, its order kept as int64 (8 bytes a structure; its Python
        # list took 36, which a million structures notice)
        n = len(self.data_source)
        order = torch.randperm(n, generator=self.generator).numpy()
        for start in range(0, n, _CHUNK):
            yield from order[start : start + _CHUNK].tolist()
        torch.randperm(n, generator=self.generator)  # as RandomSampler does, once exhausted


_CHUNK = 4096


def shuffle_generator(loader) -> torch.Generator | None:
    """The generator of a training loader's order (saved in checkpoints, for resume)."""
    sampler = loader.batch_sampler if isinstance(loader.batch_sampler, AtomBudgetBatches) else (
        loader.sampler)  # fmt: skip
    return getattr(sampler, "generator", None)


def _batch(graphs, dtype: torch.dtype) -> dict:
    return to_device(collate(graphs), "cpu", dtype)
