"""Peptides with ten physicochemical yes/no labels: a multilabel set built with RDKit.

Random sequences of the 20 standard amino acids (``--min-residues`` to ``--max-residues``,
uniform, seeded) are built into 3D with RDKit: ``Chem.MolFromSequence``, hydrogens added, one
ETKDGv3 conformer (random coordinates as the start, seed per molecule). A molecule that does
not embed is replaced by the next sequence and counted. With ``--heavy-atoms`` the hydrogens
are dropped after embedding (the geometry is that of the full molecule).

Labels, from the ``peptides`` package on the sequence, each thresholded at its median over the
generated set (``info["labels"]``, 0/1 in this order; the raw values are in ``info`` too):

    charge (pH 7), isoelectric_point, hydrophobicity (Kyte-Doolittle), aliphatic_index,
    instability_index, boman, molecular_weight, hydrophobic_moment, aromatic_fraction
    (share of F, W, Y), helix_propensity (share of the helix-favouring A, E, L, M, Q, K, R, H)

Embedding is the cost: about 0.4 s for 5 residues and 3 s for 15 with hydrogens, a minute for
30, on one core. ``--workers`` runs molecules in parallel processes.

    pip install rdkit peptides
    python tools/make_peptides.py --count 2000 --workers 2 -o peptides.xyz   # hours at 5-30
    python tools/make_peptides.py --count 200 --max-residues 10 -o small.xyz # minutes
"""

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
LABELS = ("charge", "isoelectric_point", "hydrophobicity", "aliphatic_index",
          "instability_index", "boman", "molecular_weight", "hydrophobic_moment",
          "aromatic_fraction", "helix_propensity")  # fmt: skip


def descriptors(sequence: str) -> dict[str, float]:
    """The raw values behind :data:`LABELS` for one sequence."""
    import peptides

    p = peptides.Peptide(sequence)
    n = len(sequence)
    return {
        "charge": float(p.charge(pH=7.0)),
        "isoelectric_point": float(p.isoelectric_point()),
        "hydrophobicity": float(p.hydrophobicity()),
        "aliphatic_index": float(p.aliphatic_index()),
        "instability_index": float(p.instability_index()),
        "boman": float(p.boman()),
        "molecular_weight": float(p.molecular_weight()),
        "hydrophobic_moment": float(p.hydrophobic_moment()),
        "aromatic_fraction": sum(sequence.count(a) for a in "FWY") / n,
        "helix_propensity": sum(sequence.count(a) for a in "AELMQKRH") / n,
    }


def embed(task: tuple[str, int, bool]) -> Atoms | None:
    """One conformer of the peptide ``sequence`` as Atoms, or None when ETKDG fails."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    sequence, seed, heavy_only = task
    mol = Chem.AddHs(Chem.MolFromSequence(sequence))
    params = AllChem.ETKDGv3()
    params.randomSeed, params.useRandomCoords = seed, True
    if AllChem.EmbedMolecule(mol, params) != 0:
        return None
    if heavy_only:
        mol = Chem.RemoveHs(mol)
    positions = mol.GetConformer().GetPositions()
    atoms = Atoms([a.GetSymbol() for a in mol.GetAtoms()], positions=positions - positions.mean(0))
    atoms.info["sequence"] = sequence
    atoms.info.update(descriptors(sequence))
    return atoms


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True, help="extxyz file to write")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--min-residues", type=int, default=5)
    parser.add_argument("--max-residues", type=int, default=30)
    parser.add_argument("--heavy-atoms", action="store_true", help="drop hydrogens after embedding")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not 1 <= args.min_residues <= args.max_residues:
        parser.error("need 1 <= --min-residues <= --max-residues")
    rng = np.random.default_rng(args.seed)
    frames, failed, drawn = [], 0, 0
    pool = ProcessPoolExecutor(args.workers) if args.workers > 1 else None
    mapping = pool.map if pool is not None else map
    try:
        while len(frames) < args.count:
            tasks = []
            for _ in range(args.count - len(frames)):
                length = int(rng.integers(args.min_residues, args.max_residues + 1))
                sequence = "".join(rng.choice(list(AMINO_ACIDS), length))
                tasks.append((sequence, args.seed * 1_000_003 + drawn, args.heavy_atoms))
                drawn += 1
            for atoms in mapping(embed, tasks):
                if atoms is None:
                    failed += 1
                else:
                    frames.append(atoms)
    finally:
        if pool is not None:
            pool.shutdown()
    medians = {name: float(np.median([a.info[name] for a in frames])) for name in LABELS}
    for atoms in frames:
        atoms.info["labels"] = np.array([int(atoms.info[n] > medians[n]) for n in LABELS])
    ase.io.write(args.out, frames, format="extxyz")
    sizes = [len(a) for a in frames]
    print(f"wrote {args.out}: {len(frames)} peptides, {min(sizes)}-{max(sizes)} atoms "
          f"(mean {np.mean(sizes):.0f}); {failed} sequences did not embed")  # fmt: skip
    for name in LABELS:
        print(f"  {name:20s} median {medians[name]:.4g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
