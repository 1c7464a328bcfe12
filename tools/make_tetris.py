"""Write the tetris classification set shipped inside eqna (``embedded:tetris_train.xyz``,
``embedded:tetris_test.xyz``).

The eight pieces of e3nn's tetris example (:mod:`eqna.data.tetris`; one mirror pair,
``chiral_1`` / ``chiral_2``), 1.5 Å grid, carbon atoms, ``info["shape"]`` the class. Each file
holds every piece under random rotations (uniform on SO(3)) with its atoms in a random order:
train 16 copies of each piece (seed 0), test 16 others (seed 1). No reflections: telling the
mirror pair apart is the point.

    python tools/make_tetris.py            # writes eqna/data/embedded/tetris_{train,test}.xyz
"""

import argparse
from pathlib import Path

import ase.io

from eqna.data.tetris import rotated_copies, tetris_pieces

EMBEDDED = Path(__file__).resolve().parents[1] / "eqna" / "data" / "embedded"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EMBEDDED)
    parser.add_argument("--copies", type=int, default=16, help="rotations of each piece per file")
    args = parser.parse_args(argv)
    pieces = tetris_pieces()
    for name, seed in (("train", 0), ("test", 1)):
        path = args.out / f"tetris_{name}.xyz"
        ase.io.write(path, rotated_copies(pieces, args.copies, seed), format="extxyz")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
