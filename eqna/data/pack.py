"""``eqna-pack DATA... -o DIR``: any ASE-readable input into a store (:mod:`eqna.data.store`).

Streams: frames are read one at a time and written in chunks, so memory stays bounded whatever
the input size. Labels are read and every structure is checked (finite values, a sound cell,
no two atoms closer than --min-distance, a sane neighbour count) in ``--workers`` processes,
which also build the neighbour lists when ``--cutoff`` is given. A store records the eqna
version, the cutoff and the label keys; a training whose config disagrees is refused.

Atomic: the HDF5 file is written under a temporary name and renamed when complete, then the
manifest is written; a killed pack leaves a folder that reads as incomplete, never one that
looks finished.

    eqna-pack ../shared/data/molecules/acac_train_300K.xyz -o stores/acac --cutoff 5.0
    eqna-train configs/acac.yaml data.train=stores/acac
    eqna-pack qm9pack: -o stores/qm9 --target-key U0,gap,... --workers 2   # all of QM9
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from eqna.data.errors import DataError
from eqna.data.store import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    STRUCTURES,
    StoreKeys,
    h5py_module,
    is_store,
)
from eqna.data.store_statistics import FOLDER as STATISTICS

QM9 = "qm9pack:"  # the source name of all of QM9 (eqna.data.qm9)
CHUNK = 256  # structures read, checked and written at a time


def _structure(job) -> dict:
    """One frame's columns: atoms, labels, flags and (with a cutoff) its checked edges."""
    from eqna.data.datasets import is_isolated_atom
    from eqna.data.labels import LabelKeys, extract_labels
    from eqna.data.neighbours import neighbour_graph
    from eqna.data.validation import GeometryLimits, check_before_search, check_distances

    atoms, where, keys, cutoff, limits = job
    label_keys = LabelKeys(keys.energy_key, keys.forces_key, keys.stress_key, keys.target_key,
                           virial=keys.virial_key, weight=keys.weight_key)  # fmt: skip
    labels = extract_labels(atoms, label_keys, where)
    isolated = not keys.target_key and is_isolated_atom(atoms)
    limits = GeometryLimits(*limits)
    check_before_search(atoms, 0.0 if isolated or cutoff is None else cutoff, limits, where)
    edges = None
    if cutoff is not None or not isolated:
        # without a cutoff, a short search finds the atoms too close together (not one to
        # min_distance itself: the cell list would have (extent / min_distance)^3 bins)
        radius = cutoff if cutoff is not None else max(limits.min_distance, 1.5)
        edge_index, shifts = neighbour_graph(atoms.positions, atoms.cell.array, atoms.pbc, radius)
        check_distances(atoms, edge_index, shifts, limits, where)
        if cutoff is not None:
            edges = (edge_index.T.astype(np.int32), shifts.astype(np.int32))
    return {
        "numbers": atoms.numbers.astype(np.int16),
        "positions": atoms.positions.astype(np.float64),
        "cell": atoms.cell.array.astype(np.float64),
        "pbc": atoms.pbc.astype(bool),
        "labels": labels,
        "isolated": isolated,
        "config_type": str(atoms.info.get("config_type", "")),
        "edges": edges,
    }


class _Writer:
    """Appends chunks of structures to resizable HDF5 columns."""

    def __init__(self, h5, num_targets: int, with_edges: bool):
        self.h5, self.with_edges = h5, with_edges
        text = h5py_module().string_dtype()
        shapes = {  # name: (trailing shape, dtype)
            "numbers": ((), np.int16), "positions": ((3,), np.float64),
            "forces": ((3,), np.float64), "cell": ((3, 3), np.float64), "pbc": ((3,), bool),
            "energy": ((), np.float64), "stress": ((3, 3), np.float64),
            "weight": ((), np.float64), "property": ((num_targets,), np.float64),
            "has_energy": ((), bool), "has_forces": ((), bool), "has_stress": ((), bool),
            "isolated": ((), bool), "config_type": ((), text), "source": ((), np.int32),
            "frame": ((), np.int64),
        }  # fmt: skip
        if num_targets == 0:  # HDF5 chunks cannot have a zero dimension
            del shapes["property"]
        if with_edges:
            shapes.update(edge_index=((2,), np.int32), edge_shift=((3,), np.int32))
        for name, (shape, dtype) in shapes.items():
            h5.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                              chunks=(4096, *shape) if shape else (65536,))  # fmt: skip
        self.atom_ptr, self.edge_ptr = [0], [0]

    def _extend(self, name: str, data: np.ndarray) -> None:
        if len(data) == 0:
            return
        column = self.h5[name]
        column.resize(column.shape[0] + len(data), axis=0)
        column[-len(data) :] = data

    def write(self, chunk: list[tuple[dict, int, int]]) -> None:
        per_atom = {"numbers": [], "positions": [], "forces": []}
        per_edge = {"edge_index": [], "edge_shift": []}
        rows = {name: [] for name in ("cell", "pbc", "energy", "stress", "weight", "property",
                                      "has_energy", "has_forces", "has_stress", "isolated",
                                      "config_type", "source", "frame")}  # fmt: skip
        for item, source, frame in chunk:
            labels, n = item["labels"], len(item["numbers"])
            per_atom["numbers"].append(item["numbers"])
            per_atom["positions"].append(item["positions"])
            per_atom["forces"].append(labels["forces"])
            self.atom_ptr.append(self.atom_ptr[-1] + n)
            if self.with_edges:
                edge_index, shifts = item["edges"] if item["edges"] is not None else (
                    np.zeros((0, 2), np.int32), np.zeros((0, 3), np.int32))  # fmt: skip
                per_edge["edge_index"].append(edge_index)
                per_edge["edge_shift"].append(shifts)
                self.edge_ptr.append(self.edge_ptr[-1] + len(edge_index))
            rows["cell"].append(item["cell"])
            rows["pbc"].append(item["pbc"])
            for name in ("energy", "stress", "weight", "has_energy", "has_forces", "has_stress"):
                rows[name].append(np.asarray(labels[name]))
            rows["property"].append(np.asarray(labels.get("property", np.zeros(0))))
            rows["isolated"].append(item["isolated"])
            rows["config_type"].append(item["config_type"])
            rows["source"].append(source)
            rows["frame"].append(frame)
        for name, parts in {**per_atom, **per_edge}.items():
            if parts:
                self._extend(name, np.concatenate(parts))
        for name, values in rows.items():
            if name in self.h5 and values:
                self._extend(name, np.stack(values))

    def finish(self) -> None:
        self.h5.create_dataset("atom_ptr", data=np.asarray(self.atom_ptr, np.int64))
        if self.with_edges:
            self.h5.create_dataset("edge_ptr", data=np.asarray(self.edge_ptr, np.int64))


def _frames(sources: list[str]):
    """(atoms, source index, frame) of every input, streamed where the format allows."""
    import ase.io

    from eqna.data.ase_db import is_ase_db, iter_ase_db
    from eqna.data.cgcnn_folder import is_cgcnn_folder
    from eqna.data.datasets import read_structures, resolve_path
    from eqna.data.qm9 import iter_qm9

    for s, spec in enumerate(sources):
        if spec == QM9:
            yield from ((atoms, s, frame) for frame, atoms in enumerate(iter_qm9()))
            continue
        path = resolve_path(spec)
        if is_cgcnn_folder(path):
            frames = iter(read_structures(spec))
        elif is_ase_db(path):
            frames = iter_ase_db(path)
        else:
            frames = ase.io.iread(path, index=":")
        frame = 0
        try:
            for frame, atoms in enumerate(frames):  # noqa: B007 (frame names a failure)
                yield atoms, s, frame
        except DataError:
            raise
        except Exception as err:  # ASE readers raise many types for a bad file
            raise DataError(f"{spec} frame {frame}: cannot be read ({err})") from err


def _batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def pack(
    sources: list[str],
    output: Path,
    keys: StoreKeys = StoreKeys(),  # noqa: B008 (frozen)
    cutoff: float | None = None,
    limits: tuple[float, float] = (0.1, 500.0),
    workers: int = 0,
    progress: bool = False,
    frames=None,
) -> dict:
    """Packs ``sources`` into the store ``output`` (a new or incomplete folder); returns the
    manifest. Raises DataError naming the file and frame of the first bad structure.
    ``frames``: an iterable of (atoms, source index, frame) to pack instead of reading the
    sources, which then only name them (e.g. generated structures).

    Memory holds one chunk of structures (a few hundred) at a time, whatever the input size.
    """
    from eqna import __version__

    h5py = h5py_module()

    output.mkdir(parents=True, exist_ok=True)
    partial = output / f".{STRUCTURES}.partial"
    for stale in (output / MANIFEST, output / STRUCTURES, partial):
        stale.unlink(missing_ok=True)
    if (output / STATISTICS).is_dir():  # the cached statistics of what is replaced
        shutil.rmtree(output / STATISTICS)
    pool = None
    if workers > 0:
        import multiprocessing

        pool = multiprocessing.get_context("spawn").Pool(workers)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit=" structures", file=sys.stderr)
    count = 0
    try:
        with h5py.File(partial, "w") as h5:
            writer = _Writer(h5, len(keys.target_key), cutoff is not None)
            for batch in _batches(_frames(sources) if frames is None else frames, CHUNK):
                jobs = [(atoms, f"{sources[s]} frame {f}: ", keys, cutoff, limits)
                        for atoms, s, f in batch]  # fmt: skip
                if pool is None:
                    items = [_structure(job) for job in jobs]
                else:
                    items = pool.map(_structure, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
                writer.write([(item, s, f) for item, (_, s, f) in zip(items, batch)])
                count += len(batch)
                if bar is not None:
                    bar.update(len(batch))
            if count == 0:
                raise DataError(f"{', '.join(sources)}: no structures")
            writer.finish()
            elements = sorted({int(z) for z in np.unique(h5["numbers"][()])})
        os.replace(partial, output / STRUCTURES)
    finally:
        if pool is not None:
            pool.terminate()
        if bar is not None:
            bar.close()
        partial.unlink(missing_ok=True)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "eqna_version": __version__,
        "sources": [
            s if s == QM9 or frames is not None else str(Path(s).resolve()) for s in sources
        ],  # fmt: skip
        "num_structures": count,
        "elements": elements,
        "cutoff": cutoff,
        "label_keys": {**asdict(keys), "target_key": list(keys.target_key)},
        "geometry_limits": {"min_distance": limits[0], "max_neighbors_per_atom": limits[1]},
    }
    tmp = output / f".{MANIFEST}.partial"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, output / MANIFEST)
    return manifest


def main(argv: list[str] | None = None) -> int:
    from eqna.cli import command_parser, user_error

    parser = command_parser("eqna-pack", __doc__)
    parser.add_argument(
        "data", nargs="+", help="structure files (any ASE format, .db too), or qm9pack: for QM9"
    )
    parser.add_argument("-o", "--output", required=True, help="store folder to write")
    parser.add_argument("--cutoff", type=float, help="store neighbour lists for this r_max (Å)")
    parser.add_argument("--workers", type=int, default=0, help="worker processes (0: none)")
    parser.add_argument("--force", action="store_true", help="replace an existing store")
    parser.add_argument("--energy-key", default="energy")
    parser.add_argument("--forces-key", default="forces")
    parser.add_argument("--stress-key", default="stress")
    parser.add_argument("--virial-key")
    parser.add_argument("--weight-key")
    parser.add_argument("--target-key", help="property stores: info key(s), comma-separated")
    parser.add_argument("--min-distance", type=float, default=0.1)
    parser.add_argument("--max-neighbors-per-atom", type=float, default=500.0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    output = Path(args.output).expanduser()
    targets = tuple(t for t in (args.target_key or "").split(",") if t)
    keys = StoreKeys(args.energy_key, args.forces_key, args.stress_key, args.virial_key,
                     args.weight_key, targets)  # fmt: skip
    try:
        if args.cutoff is not None and not args.cutoff > 0:
            raise DataError(f"--cutoff must be > 0, got {args.cutoff}")
        if args.workers < 0:
            raise DataError(f"--workers must be >= 0, got {args.workers}")
        if output.exists() and not output.is_dir():
            raise DataError(f"{output}: exists and is not a folder")
        if (output / MANIFEST).exists() and not args.force:
            raise DataError(f"{output}: a complete store exists (pass --force to replace it)")
        if output.is_dir() and any(output.iterdir()) and not is_store(output):
            raise DataError(f"{output}: a non-empty folder that is not a store")
        missing = [spec for spec in args.data if spec != QM9 and not Path(spec).exists()]
        if missing:
            raise DataError(f"{', '.join(missing)}: file not found")
        limits = (args.min_distance, args.max_neighbors_per_atom)
        show = not args.no_progress and sys.stderr.isatty()
        manifest = pack(args.data, output, keys, args.cutoff, limits, args.workers, show)
    except DataError as err:
        return user_error(err, args.debug)
    edges = f", neighbour lists for r_max {args.cutoff:g} Å" if args.cutoff else ""
    print(f"wrote {manifest['num_structures']} structures to {output}{edges}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
