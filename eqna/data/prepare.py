"""From the ``data`` config section to datasets, loaders and the statistics the model stores.

``cfg`` arguments are the validated ``data`` section (:class:`eqna.train.config.DataConfig`);
this room sits below training and only reads its attributes.
"""

from dataclasses import dataclass
from functools import partial

import torch
from ase.data import atomic_numbers, chemical_symbols

from eqna.data.collate import collate, to_device
from eqna.data.datasets import (
    DataError,
    GraphDataset,
    LabelKeys,
    extract_labels,
    is_isolated_atom,
    read_structures,
    split_indices,
)
from eqna.data.graph import GraphSpec
from eqna.data.statistics import (
    average_num_neighbors,
    energy_scale_shift,
    isolated_atom_energies,
    least_squares_energies,
    target_statistics,
)


@dataclass
class PreparedData:
    """Datasets of one training run and the data-derived model hyperparameters."""

    train: GraphDataset
    valid: GraphDataset
    test: GraphDataset | None
    derived: dict  # elements, atomic_energies, avg_num_neighbors, scale, shift


def target_keys(cfg) -> tuple[str, ...]:
    """The ``atoms.info`` keys of the per-structure target(s); empty for potentials."""
    if cfg.target_key is None:
        return ()
    return (cfg.target_key,) if isinstance(cfg.target_key, str) else tuple(cfg.target_key)


def _label_keys(cfg) -> LabelKeys:
    return LabelKeys(cfg.energy_key, cfg.forces_key, cfg.stress_key, target_keys(cfg))


def _energy_reader(spec: str, keys: LabelKeys):
    return lambda atoms: float(extract_labels(atoms, keys, f"{spec}: ")["energy"])


def _atomic_energies(cfg, isolated, train: GraphDataset, elements) -> list[float]:
    keys = _label_keys(cfg)
    mode = cfg.e0s
    if isinstance(mode, dict):
        given = {atomic_numbers[s]: float(e) for s, e in mode.items()}
        missing = [chemical_symbols[z] for z in elements if z not in given]
        if missing:
            raise DataError(f"data.e0s: no energy given for element(s) {', '.join(missing)}")
        return [given[z] for z in elements]
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
    return list(least_squares_energies(train.graphs, elements).values())


def _subset(frames, indices):
    return [frames[i] for i in indices], [int(i) for i in indices]


def prepare_data(
    cfg,
    r_max: float,
    elements: list[int] | None = None,
    *,
    max_num_neighbors: int | None = None,
    extensive: bool = False,
):
    """Read, split and featurise the data; compute E0s, scale, shift and neighbour count, or,
    with ``data.target_key``, the target mean and std.

    Args:
        cfg: the ``data`` config section.
        r_max: cutoff radius of the model, Å.
        elements: atomic numbers the model must know; default: those in the files.
        max_num_neighbors: store only each atom's nearest neighbours (property models).
        extensive: the target is a sum over atoms (sum pooling): statistics per atom.
    """
    keys = _label_keys(cfg)
    frames = read_structures(cfg.train)
    reference = [not keys.properties and is_isolated_atom(a) for a in frames]
    isolated = [a for a, ref in zip(frames, reference) if ref]
    ids = [i for i, ref in enumerate(reference) if not ref]
    molecules = [frames[i] for i in ids]
    if cfg.max_train_frames is not None:
        molecules, ids = molecules[: cfg.max_train_frames], ids[: cfg.max_train_frames]
    extra = {
        name: read_structures(spec)
        for name, spec in (("valid", cfg.valid), ("test", cfg.test))
        if spec
    }
    if elements is None:
        found = {int(z) for a in frames + sum(extra.values(), []) for z in a.numbers}
        elements = sorted(found)
    train_idx, valid_idx, test_idx = split_indices(
        len(molecules),
        0.0 if cfg.valid else cfg.valid_fraction,
        0.0 if cfg.test else cfg.test_fraction,
        cfg.split_seed,
    )
    make = partial(
        GraphDataset, spec=GraphSpec(r_max, elements, max_num_neighbors), label_keys=keys
    )

    def from_split(indices):
        return make(
            [molecules[i] for i in indices], name=cfg.train, frame_ids=[ids[i] for i in indices]
        )

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
    derived = {"elements": elements, "avg_num_neighbors": average_num_neighbors(train.graphs)}
    if keys.properties:
        mean, std = target_statistics(train.graphs, extensive)
        derived.update(target_mean=mean, target_std=std)
    else:
        e0s = _atomic_energies(cfg, isolated, train, elements)
        shift, scale = energy_scale_shift(train.graphs, e0s)
        derived.update(atomic_energies=e0s, scale=scale, shift=shift)
    return PreparedData(train, valid, test, derived)


def make_loader(dataset, batch_size: int, dtype: torch.dtype, shuffle: bool, seed: int = 0):
    """DataLoader that batches graphs and casts floating tensors to ``dtype``."""
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        collate_fn=lambda graphs: to_device(collate(graphs), "cpu", dtype),
    )
