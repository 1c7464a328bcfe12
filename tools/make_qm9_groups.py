"""QM9 functional groups: a multilabel classification set from the ``qm9pack`` wheel.

Every QM9 molecule (its DFT geometry, ``eqna.data.qm9``) gets ``info["groups"]``, ten 0/1
labels: whether RDKit's ``Chem.Fragments`` counters find the group in the molecule's SMILES
(``info["smiles"]``, as qm9pack ships it). The groups, in label order:

    ketone (fr_ketone), ether (fr_ether), alcohol (fr_Al_OH, aliphatic OH), amine (fr_NH2 or
    fr_NH1: primary or secondary), nitrile (fr_nitrile), amide (fr_amide), ester (fr_ester),
    aldehyde (fr_aldehyde), aromatic ring (RDKit's aromatic ring count > 0), alkyne (a C#C
    triple bond)

Carboxylic acids (fr_COO) would be the tenth group of the usual list, but QM9 has almost none
(0.1 % of 2000 molecules): the label would have no positives in most test splits, so the
alkyne, common in QM9, takes its place.

A molecule whose SMILES RDKit cannot parse, or whose heavy atoms differ from the geometry's,
is left out and counted. Molecules are drawn in a seeded random order (``--seed``) and the
first ``--count`` written; the label frequencies are printed. Generation needs the
``qm9pack`` and ``rdkit`` packages (``pip install "eqna[qm9]" rdkit``); training on the file
needs neither.

    python tools/make_qm9_groups.py --count 2000 -o qm9_groups.xyz     # seconds
    eqna-train qm9_groups data.train=qm9_groups.xyz
"""

import argparse
import functools
from collections import Counter
from pathlib import Path

import ase.io
import numpy as np

GROUPS = ("ketone", "ether", "alcohol", "amine", "nitrile", "amide", "ester", "aldehyde",
          "aromatic_ring", "alkyne")  # fmt: skip


@functools.cache
def _alkyne():
    """The C#C pattern (rdkit is imported only when generating)."""
    from rdkit import Chem

    return Chem.MolFromSmarts("C#C")


def group_labels(smiles: str):
    """The ten 0/1 labels of :data:`GROUPS` for ``smiles`` and its heavy-atom formula, or
    None when RDKit cannot read it."""
    from rdkit import Chem
    from rdkit.Chem import Fragments, rdMolDescriptors

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None
    counts = (
        Fragments.fr_ketone(mol),
        Fragments.fr_ether(mol),
        Fragments.fr_Al_OH(mol),
        Fragments.fr_NH2(mol) + Fragments.fr_NH1(mol),
        Fragments.fr_nitrile(mol),
        Fragments.fr_amide(mol),
        Fragments.fr_ester(mol),
        Fragments.fr_aldehyde(mol),
        rdMolDescriptors.CalcNumAromaticRings(mol),
        len(mol.GetSubstructMatches(_alkyne())),
    )
    heavy = Counter(atom.GetSymbol() for atom in mol.GetAtoms())
    return np.array([int(c > 0) for c in counts]), heavy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, required=True, help="extxyz file to write")
    parser.add_argument("--count", type=int, default=2000, help="molecules to write")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from eqna.data.qm9 import iter_qm9

    molecules = list(iter_qm9())
    order = np.random.default_rng(args.seed).permutation(len(molecules))
    frames, skipped = [], Counter()
    for index in order:
        atoms = molecules[int(index)]
        found = group_labels(str(atoms.info["smiles"]))
        if found is None:
            skipped["unreadable SMILES"] += 1
            continue
        labels, heavy = found
        if heavy != Counter(s for s in atoms.get_chemical_symbols() if s != "H"):
            skipped["SMILES and geometry differ"] += 1
            continue
        atoms.info["groups"] = labels
        frames.append(atoms)
        if len(frames) == args.count:
            break
    ase.io.write(args.out, frames, format="extxyz")
    frequency = np.mean([a.info["groups"] for a in frames], axis=0)
    print(f"wrote {args.out}: {len(frames)} molecules; left out: {dict(skipped) or 'none'}")
    for name, share in zip(GROUPS, frequency):
        print(f"  {name:16s} {100 * share:5.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
