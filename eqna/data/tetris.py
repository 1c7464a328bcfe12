"""The eight 3D tetris pieces of e3nn's classification example, as ASE structures.

Each piece is four atoms on a cubic grid (``spacing`` Å apart) labelled ``info["shape"]``.
Two of them, ``chiral_1`` and ``chiral_2``, are mirror images of each other and cannot be
turned into each other by any rotation; every other piece is its own mirror image (up to a
rotation and a relabelling of its atoms). So an O(3)-invariant classifier gives both chiral
pieces the same probabilities and gets at most 7 of the 8 right; one that also reads
pseudoscalars (``model.parity_odd_outputs``) can tell them apart.
"""

import numpy as np
from ase import Atoms
from scipy.spatial.transform import Rotation

PIECES = {
    "chiral_1": [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, 1, 0)],
    "chiral_2": [(0, 0, 0), (0, 0, 1), (1, 0, 0), (1, -1, 0)],
    "square": [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0)],
    "line": [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 0, 3)],
    "corner": [(0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0)],
    "L": [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)],
    "tee": [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 1)],  # "T" would read back as True
    "zigzag": [(0, 0, 0), (1, 0, 0), (1, 1, 0), (2, 1, 0)],
}
"""Grid coordinates of each piece (e3nn's tetris example; its "T" is ``tee`` here, since the
extxyz reader takes a bare T or F for a boolean)."""

SHAPES = tuple(PIECES)


def tetris_pieces(spacing: float = 1.5, element: str = "C") -> list[Atoms]:
    """The eight pieces, centred at the origin, in :data:`SHAPES` order, in a 20 Å box
    without periodicity."""
    pieces = []
    for name, grid in PIECES.items():
        positions = spacing * np.asarray(grid, dtype=np.float64)
        atoms = Atoms(f"{element}4", positions=positions - positions.mean(0), cell=[20.0] * 3)
        atoms.info["shape"] = name
        pieces.append(atoms)
    return pieces


def mirrored(atoms: Atoms) -> Atoms:
    """The mirror image (x -> -x) of ``atoms``, labels kept."""
    out = atoms.copy()
    out.positions[:, 0] *= -1.0
    return out


def rotated_copies(pieces: list[Atoms], copies: int, seed: int, shuffle_atoms: bool = True):
    """``copies`` random rotations of every piece (uniform on SO(3)), with their atoms in a
    random order, so a classifier must be rotation- and permutation-invariant to learn them."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        for atoms in pieces:
            rotation = Rotation.random(random_state=rng).as_matrix()
            copy = atoms.copy()
            copy.positions = atoms.positions @ rotation.T
            if shuffle_atoms:
                copy = copy[rng.permutation(len(copy))]
            out.append(copy)
    return out
