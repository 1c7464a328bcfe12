"""SkipAtom element embeddings (Antunes et al., npj Comput. Mater. 8, 44, 2022).

``eqna-skipatom DATA [DATA ...] -o emb.json [--dim 30] [--r-max 8.0]
[--max-neighbors 12] [--epochs 2000] [--lr 0.05] [--seed 0]``

Every atom of every structure predicts the elements of its ``max_neighbors`` nearest neighbours
within ``r_max`` (periodic images included). The skip-gram model is trained full batch on the
element co-occurrence counts C [V, V] (centre element by row): target vectors E [V, d], context
vectors W [V, d], loss ``-sum_ab C_ab log softmax_b(E_a . W_b) / sum C``. The target vectors E
are written to JSON, one row per element, and read back with :func:`load_skipatom`.
"""

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from eqna.data.datasets import DataError, read_structures
from eqna.data.neighbours import nearest_neighbour_mask, neighbour_graph

__all__ = [
    "SkipAtomError",
    "cooccurrence",
    "count_pairs",
    "load_skipatom",
    "main",
    "save_skipatom",
    "train_skipatom",
]

FORMAT = "eqna-skipatom"
VERSION = 1
_NUM_Z = len(chemical_symbols)  # 119: Z = 0 (ASE's dummy "X") to 118
_SETTINGS = ("dim", "r_max", "max_neighbors", "epochs", "lr", "seed")
_Z_OF = {symbol: z for z, symbol in enumerate(chemical_symbols)}


class SkipAtomError(ValueError):
    """A SkipAtom file that is missing or malformed, or lacks a requested element."""


def _structure_pairs(atoms: Atoms, r_max: float, max_neighbors: int) -> np.ndarray:
    """Codes ``Z_centre * 119 + Z_neighbour`` [p] of the pairs kept in one structure."""
    positions, cell = atoms.get_positions(), atoms.cell.array
    edge_index, shifts = neighbour_graph(positions, cell, atoms.pbc, r_max)
    centre, neighbour = np.ascontiguousarray(edge_index[0]), np.ascontiguousarray(edge_index[1])
    lengths = np.linalg.norm(positions[neighbour] - positions[centre] + shifts @ cell, axis=1)
    keep = nearest_neighbour_mask(
        torch.from_numpy(centre), torch.from_numpy(lengths), max_neighbors
    ).numpy()
    numbers = atoms.numbers.astype(np.int64)
    return numbers[centre[keep]] * _NUM_Z + numbers[neighbour[keep]]


def count_pairs(
    structures: Sequence[Atoms], r_max: float, max_neighbors: int, where: str = "structures"
) -> tuple[np.ndarray, int]:
    """Element co-occurrence counts over all atomic numbers.

    Args:
        structures: ASE structures (periodic, mixed or molecular).
        r_max: neighbour cutoff, Å.
        max_neighbors: pairs kept per centre atom, nearest first.
        where: names the source in error messages (a file name).

    Returns:
        counts: [119, 119] int64, ``counts[a, b]`` = kept pairs with a centre of atomic number a
            and a neighbour of atomic number b.
        skipped: number of structures without any pair within ``r_max``.
    """
    if not (math.isfinite(r_max) and r_max > 0):
        raise ValueError(f"r_max must be a positive finite distance in Å, got {r_max}")
    if int(max_neighbors) != max_neighbors or max_neighbors < 1:
        raise ValueError(f"max_neighbors must be an integer >= 1, got {max_neighbors}")
    counts = np.zeros(_NUM_Z * _NUM_Z, dtype=np.int64)
    skipped = 0
    for index, atoms in enumerate(structures):
        try:
            codes = _structure_pairs(atoms, r_max, int(max_neighbors))
        except ValueError as err:
            raise DataError(f"{where}: structure {index}: {err}") from err
        skipped += codes.size == 0
        counts += np.bincount(codes, minlength=_NUM_Z * _NUM_Z)
    return counts.reshape(_NUM_Z, _NUM_Z), skipped


def _restrict(counts: np.ndarray) -> tuple[list[int], np.ndarray]:
    """The atomic numbers that occur in any pair, and counts [V, V] restricted to them."""
    elements = np.flatnonzero(counts.sum(axis=0) + counts.sum(axis=1)).tolist()
    return elements, counts[np.ix_(elements, elements)]


def cooccurrence(
    structures: Sequence[Atoms], r_max: float, max_neighbors: int
) -> tuple[list[int], np.ndarray]:
    """Atomic numbers seen in pairs [V] (ascending) and their co-occurrence counts [V, V] int64.

    ``counts[a, b]`` counts pairs whose centre has element ``elements[a]`` and whose neighbour
    (one of the centre's ``max_neighbors`` nearest within ``r_max``) has ``elements[b]``.
    """
    return _restrict(count_pairs(structures, r_max, max_neighbors)[0])


def train_skipatom(
    elements: Sequence[int],
    counts: np.ndarray,
    dim: int = 30,
    epochs: int = 2000,
    lr: float = 0.05,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, float]:
    """Fits the skip-gram model full batch (Adam, float64) on the co-occurrence counts.

    Args:
        elements: [V] atomic numbers labelling the rows and columns of ``counts``.
        counts: [V, V] non-negative counts, centre element by row, neighbour by column.
        dim: embedding size d.
        epochs: number of full-batch Adam steps.
        lr: Adam learning rate.
        seed: ``torch.manual_seed`` for the initial vectors.
        log: called with a short progress line four times during training.

    Returns:
        vectors: [V, d] float64 target vectors E, rows in the order of ``elements``.
        final_loss: cross entropy after the last step, nats per pair.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (len(elements), len(elements)):
        raise ValueError(f"counts has shape {counts.shape}, expected [{len(elements)}] * 2")
    if not np.isfinite(counts).all() or (counts < 0).any() or counts.sum() <= 0:
        raise ValueError("counts must be finite and non-negative with at least one pair")
    if dim < 1 or epochs < 1 or not lr > 0:
        raise ValueError(f"need dim >= 1, epochs >= 1, lr > 0; got {dim}, {epochs}, {lr}")
    torch.manual_seed(seed)
    n = len(elements)
    target = torch.nn.Parameter(torch.randn(n, dim, dtype=torch.float64) / math.sqrt(dim))
    context = torch.nn.Parameter(torch.randn(n, dim, dtype=torch.float64) / math.sqrt(dim))
    weights = torch.from_numpy(counts / counts.sum())  # [V, V], sums to 1
    optimizer = torch.optim.Adam([target, context], lr=lr)

    def loss_fn() -> torch.Tensor:
        return -(weights * torch.log_softmax(target @ context.T, dim=1)).sum()

    for epoch in range(1, epochs + 1):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        if log is not None and epoch % max(1, epochs // 4) == 0:
            log(f"epoch {epoch}/{epochs}: loss {loss.item():.4f}")
    with torch.no_grad():
        final_loss = loss_fn().item()
    return target.detach().numpy().copy(), final_loss


def save_skipatom(
    path: str | Path, elements: Sequence[int], vectors: np.ndarray, metadata: dict | None = None
) -> Path:
    """Writes vectors [V, d] as eqna-skipatom JSON, atomically (``path.part``, then rename).

    ``metadata`` (settings, sources, counts, ...) is stored beside ``format``, ``version``,
    ``dim`` and ``elements`` (symbol -> list of d floats, ordered by atomic number).
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) != len(elements) or not np.isfinite(vectors).all():
        raise ValueError(f"vectors [{len(elements)}, d] must be finite, got {vectors.shape}")
    if sorted(set(elements)) != sorted(elements) or not all(0 <= z < _NUM_Z for z in elements):
        raise ValueError(f"elements must be distinct atomic numbers, got {list(elements)}")
    header = {"format": FORMAT, "version": VERSION, "dim": int(vectors.shape[1])}
    clash = set(metadata or {}) & {*header, "elements"}
    if clash:
        raise ValueError(f"metadata may not set {sorted(clash)}")
    header.update(metadata or {})
    rows = ",\n".join(
        f"    {json.dumps(chemical_symbols[z])}: {json.dumps(vectors[i].tolist())}"
        for i, z in sorted(enumerate(elements), key=lambda item: item[1])
    )
    text = json.dumps(header, indent=2)[: -len("\n}")] + f',\n  "elements": {{\n{rows}\n  }}\n}}\n'
    path = Path(path)
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)
    return path


def _read_table(path: Path) -> dict[int, np.ndarray]:
    """Atomic number -> vector [d] from an eqna-skipatom file, validated."""
    if not path.is_file():
        raise SkipAtomError(f"{path}: SkipAtom embedding file not found")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SkipAtomError(f"{path}: not a JSON file ({err})") from err
    found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
    if found != FORMAT:
        raise SkipAtomError(f"{path}: format is {found!r}, expected {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise SkipAtomError(f"{path}: version {doc.get('version')!r} unsupported (reads {VERSION})")
    rows = doc.get("elements")
    if not isinstance(rows, dict) or not rows:
        raise SkipAtomError(f"{path}: 'elements' must map element symbols to vectors")
    table = {}
    for symbol, row in rows.items():
        if symbol not in _Z_OF:
            raise SkipAtomError(f"{path}: 'elements' has unknown element symbol {symbol!r}")
        ok = isinstance(row, list) and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in row
        )
        if not ok or not row or not np.isfinite(row).all():
            raise SkipAtomError(f"{path}: vector of {symbol} is not a list of finite numbers")
        table[_Z_OF[symbol]] = np.asarray(row, dtype=np.float64)
    lengths = {chemical_symbols[z]: len(v) for z, v in sorted(table.items())}
    if len(set(lengths.values())) > 1:
        raise SkipAtomError(f"{path}: rows of unequal length: {lengths}")
    if doc.get("dim") != len(row):
        raise SkipAtomError(f"{path}: 'dim' is {doc.get('dim')!r} but the rows have {len(row)}")
    return table


def load_skipatom(path: str | Path, elements: Sequence[int]) -> np.ndarray:
    """Vectors [len(elements), d] float64 of the given atomic numbers, rows in the order given.

    Raises:
        SkipAtomError: the file is missing or malformed, or has no vector for an element.
    """
    path = Path(path)
    table = _read_table(path)
    bad = [z for z in elements if not (isinstance(z, int | np.integer) and 0 <= z < _NUM_Z)]
    if bad:
        raise ValueError(f"elements must be atomic numbers 0..118, got {bad}")
    missing = sorted({int(z) for z in elements} - set(table))
    if missing:
        names = ", ".join(chemical_symbols[z] for z in missing)
        covered = " ".join(chemical_symbols[z] for z in sorted(table))
        raise SkipAtomError(
            f"{path}: no SkipAtom vector for element(s) {names} (the file covers {covered}); "
            f"re-run `eqna-skipatom DATA -o {path}` on data that contains {names}"
        )
    dim = len(next(iter(table.values())))
    return np.stack([table[int(z)] for z in elements]) if len(elements) else np.zeros((0, dim))


def main(argv: list[str] | None = None) -> int:
    from eqna.cli import command_parser

    parser = command_parser("eqna-skipatom", __doc__)
    parser.add_argument("data", nargs="+", help="structure files (any ASE format, .gz ok)")
    parser.add_argument("-o", "--output", required=True, help="embedding JSON to write")
    parser.add_argument("--dim", type=int, default=30)
    parser.add_argument("--r-max", type=float, default=8.0, help="cutoff, Å")
    parser.add_argument("--max-neighbors", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in _SETTINGS[:-1]:
        if not (getattr(args, name) > 0 and math.isfinite(getattr(args, name))):
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    try:
        if Path(args.output).is_dir() or not Path(args.output).parent.is_dir():
            raise DataError(f"{args.output}: -o needs a file name in an existing folder")
        sources = [(spec, read_structures(spec)) for spec in args.data]  # fail before counting
        counts, skipped, num_structures = np.zeros((_NUM_Z, _NUM_Z), np.int64), 0, 0
        for spec, frames in sources:
            found, empty = count_pairs(frames, args.r_max, args.max_neighbors, where=spec)
            counts, skipped = counts + found, skipped + empty
            num_structures += len(frames)
            print(f"{spec}: {len(frames)} structures, {empty} without pairs within r_max")
        if counts.sum() == 0:
            raise DataError(f"{', '.join(args.data)}: no atom pairs within r_max = {args.r_max} Å")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    elements, counts = _restrict(counts)
    print(f"{int(counts.sum())} pairs over {len(elements)} elements")
    vectors, final_loss = train_skipatom(
        elements, counts, args.dim, args.epochs, args.lr, args.seed, log=print
    )
    metadata = {
        "settings": {name: getattr(args, name) for name in _SETTINGS[1:]},
        "sources": list(args.data),
        "num_structures": num_structures,
        "num_pairs": int(counts.sum()),
        "skipped_structures": skipped,
        "final_loss": final_loss,
    }
    conditional = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    floor = -(counts * np.log(np.where(counts > 0, conditional, 1))).sum() / counts.sum()
    print(f"final loss {final_loss:.4f} nats per pair (entropy floor {floor:.4f})")
    print(f"wrote {save_skipatom(args.output, elements, vectors, metadata)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
