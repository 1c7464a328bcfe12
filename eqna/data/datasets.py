"""Reading labelled structures with ASE, splitting them, and turning them into graphs."""

import io
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import ase.io
import numpy as np
import torch
from ase import Atoms

from eqna.data import keys
from eqna.data.ase_db import is_ase_db, read_ase_db
from eqna.data.cgcnn_folder import ID_PROP, is_cgcnn_folder, read_cgcnn_folder
from eqna.data.errors import DataError
from eqna.data.graph import GraphSpec
from eqna.data.labels import LabelKeys, extract_labels, property_labels
from eqna.data.store import Store, is_store
from eqna.data.validation import GeometryLimits, check_before_search, check_distances

__all__ = [
    "DataError",
    "GraphDataset",
    "LabelKeys",
    "extract_labels",
    "is_isolated_atom",
    "property_labels",
    "read_structures",
    "resolve_path",
    "split_indices",
]

EMBEDDED_PREFIX = "embedded:"


def resolve_path(spec: str) -> Path:
    """A file path, or ``embedded:NAME`` for a data file shipped inside eqna."""
    if spec.startswith(EMBEDDED_PREFIX):
        name = spec[len(EMBEDDED_PREFIX) :]
        path = Path(str(resources.files("eqna.data") / "embedded" / name))
        if not path.is_file():
            shipped = sorted(p.name for p in path.parent.glob("*.xyz"))
            raise DataError(f"{spec}: no embedded data set named {name!r} (shipped: {shipped})")
        return path
    path = Path(spec).expanduser()
    if is_cgcnn_folder(path) or is_store(path):
        return path
    if path.is_dir():
        raise DataError(
            f"{spec}: is a folder that is neither a store written by eqna-pack nor a CGCNN "
            f"folder ({ID_PROP} and CIF files)"
        )
    if not path.is_file():
        raise DataError(f"{spec}: file not found (relative paths start at {Path.cwd()})")
    return path


def read_structures(spec: str, select: str | None = None) -> Sequence[Atoms]:
    """All frames of a file in any format ASE reads (extxyz first), of a CGCNN folder, or the
    rows of an ASE database that match ``select`` (:mod:`eqna.data.ase_db`): a list. For a
    store written by ``eqna-pack``, a sequence that reads each structure when reached."""
    path = resolve_path(spec)
    if is_store(path) and select is None:
        from eqna.data.lazy import StoreFrames

        return StoreFrames(Store(path))
    if is_ase_db(path):
        return read_ase_db(path, select)
    if select is not None:
        raise DataError(f"{spec}: a selection ({select!r}) needs an ASE database (.db)")
    if is_cgcnn_folder(path):
        try:
            return read_cgcnn_folder(path)
        except ValueError as err:
            raise DataError(str(err)) from err
    try:
        frames = _read_all(path)
    except Exception as err:
        raise DataError(f"{path}: cannot be read by ase.io.read ({err})") from err
    if not frames:
        raise DataError(f"{path}: contains no structures")
    return frames


def _read_all(path: Path) -> list[Atoms]:
    """ase.io.read(path, ":"), decompressing .gz/.bz2/.xz files in memory first.

    ASE's extxyz reader seeks back to every frame; in a compressed stream each backward seek
    decompresses from the start, which makes a 10,000-frame .xyz.gz take minutes, not seconds.
    """
    from ase.io.formats import filetype, open_with_compression

    if path.suffix.lower() not in (".gz", ".bz2", ".xz"):
        return ase.io.read(path, index=":")
    with open_with_compression(str(path), "r") as handle:
        text = handle.read()
    return ase.io.read(io.StringIO(text), index=":", format=filetype(str(path)))


def is_isolated_atom(atoms: Atoms) -> bool:
    """An isolated-atom reference frame: tagged config_type IsolatedAtom, or one atom without
    periodicity (a one-atom periodic cell, e.g. bcc Fe, is a crystal, not a reference)."""
    if atoms.info.get("config_type") == "IsolatedAtom":
        return True
    return len(atoms) == 1 and not atoms.pbc.any()


def split_indices(n: int, valid_fraction: float, test_fraction: float, seed: int):
    """Random train / valid / test index arrays, reproducible from ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    n_valid, n_test = int(round(valid_fraction * n)), int(round(test_fraction * n))
    if n - n_valid - n_test < 1:
        raise DataError(f"split of {n} structures leaves no training data")
    return order[n_valid + n_test :], order[:n_valid], order[n_valid : n_valid + n_test]


class GraphDataset(torch.utils.data.Dataset):
    """Structures with labels as precomputed graph dicts (float64; cast when batched).

    Every structure passes the geometry checks of :mod:`eqna.data.validation` (``limits``;
    None skips them), so a bad frame fails here, named, before any training starts.
    """

    def __init__(
        self,
        structures: list[Atoms],
        spec: GraphSpec,
        label_keys: LabelKeys,
        name: str,
        frame_ids: Sequence[int] | None = None,
        limits: GeometryLimits | None = GeometryLimits(),  # noqa: B008 (frozen, shared safely)
    ):
        self.structures, self.spec, self.name = structures, spec, name
        self.graphs = []
        ids = range(len(structures)) if frame_ids is None else frame_ids
        self.frame_ids = [int(i) for i in ids]
        for frame, atoms in zip(self.frame_ids, structures):
            ident = f" (id {atoms.info['id']})" if "id" in atoms.info else ""
            where = f"{name} frame {frame}{ident}: "
            labels = extract_labels(atoms, label_keys, where)
            if limits is not None:
                check_before_search(atoms, spec.cutoff, limits, where)
            graph = spec.graph(atoms, labels, where)
            if limits is not None:
                edges = (graph[keys.EDGE_INDEX].numpy(), graph[keys.EDGE_CELL_SHIFT].numpy())
                check_distances(atoms, *edges, limits, where)
            self.graphs.append(graph)

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.graphs[index]
