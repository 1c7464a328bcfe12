"""Generate the long-range benchmark: pairs of charged and polar molecules at 2-20 Å (GFN2-xTB).

What
----
``eqna/data/embedded/longrange_{train,test}.xyz``: two molecules of {NH4+, CH3COO-, H2O, CH3OH}
in random orientations with centre-of-mass separations drawn uniformly from contact to 20 Å,
labelled with GFN2-xTB energies and forces from ``tblite`` (total charge set per frame). The
pairs are chosen so that the interaction decays as 1/R (like-charged ions), 1/R^2 (ion-dipole)
and 1/R^3 (dipole-dipole); a model whose receptive field ends at its cutoff cannot see the
other molecule once the closest atoms are more than r_max apart, so its energy error there is
bounded below by the spread of the interaction energy (reported in the card).

Oppositely charged ion pairs (NH4+ with CH3COO-) are *not* used: with GFN2-xTB, a closed-shell
ion pair moves charge across the gap as it separates (the NH4 fragment keeps +0.85 e at 15 Å)
and the SCF stops converging near 20 Å, the known delocalisation error of semi-local methods for
separated ions. Every kept frame has its xTB fragment charges within ``--charge-tolerance`` of
the nominal ones; frames outside, or whose SCF fails, are redrawn and counted in the card.

How
---
Each molecule is optimised (BFGS, fmax 0.05 eV/Å) at its charge, then a 300 K Langevin run
(0.5 fs, friction 0.01/fs) supplies a pool of thermal intramolecular geometries; their energies
as isolated fragments give the interaction energy E_int = E_pair - E_A - E_B of every frame.
Per frame: draw a pair (uniformly), a geometry of each molecule, two uniform random rotations
and R; redraw R while two atoms are closer than ``--contact`` x the sum of their van der Waals
radii (Alvarez 2013; 0.65 allows hydrogen bonds, H...O >= 1.77 Å, but no overlapping heavy
atoms). All randomness comes from ``--seed`` and xTB runs single-threaded, so the output is
reproducible.

Usage::

    pip install tblite
    python tools/make_longrange.py          # about 3 min on one core

``atoms.info`` of every frame: pair ("NH4+|H2O"), charge (total), charge_a, charge_b
(nominal), xtb_charge_a (Mulliken charge of the first molecule), separation (centre-of-mass
distance, Å), min_distance (closest intermolecular atom pair, Å), interaction_energy (eV),
num_atoms_a.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from importlib import metadata
from pathlib import Path

# Small molecules: single-threaded xTB is fastest and reproducible. Must be set before tblite
# (and its OpenMP / BLAS runtimes) are imported; forced, so a caller's setting cannot change it.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import numpy as np  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.build import molecule  # noqa: E402
from ase.calculators.calculator import CalculationFailed  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402
from ase.data.vdw_alvarez import vdw_radii  # noqa: E402
from ase.io import write  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402

try:  # ASE >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta  # noqa: E402
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
from ase.optimize import BFGS  # noqa: E402

from eqna.benchmarks.longrange import local_model_floor  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "eqna" / "data" / "embedded"
METHOD = "GFN2-xTB"
MODEL_CUTOFF = 5.0  # r_max of the zoo's equivariant models: the card's "beyond the cutoff"

CHARGES = {"NH4+": 1, "CH3COO-": -1, "H2O": 0, "CH3OH": 0}
PAIRS = [
    ("NH4+", "NH4+"),  # 1/R
    ("CH3COO-", "CH3COO-"),  # 1/R
    ("NH4+", "H2O"),  # 1/R^2
    ("NH4+", "CH3OH"),
    ("CH3COO-", "H2O"),
    ("CH3COO-", "CH3OH"),
    ("H2O", "CH3OH"),  # 1/R^3
]
SEPARATION_BINS = np.arange(2.0, 22.0, 2.0)


def make_calc(charge: int):
    from tblite.ase import TBLite

    return TBLite(method=METHOD, charge=charge, verbosity=0)


def build_molecule(name: str) -> Atoms:
    if name == "NH4+":
        s = 1.03 / np.sqrt(3.0)  # N-H 1.03 Å, tetrahedral
        hydrogens = [[s, s, s], [-s, -s, s], [-s, s, -s], [s, -s, -s]]
        return Atoms("NH4", positions=[[0.0, 0.0, 0.0], *hydrogens])
    if name == "CH3COO-":
        acid = molecule("CH3COOH")
        oxygens = [i for i, z in enumerate(acid.numbers) if z == 8]
        d = acid.get_all_distances()
        acidic = next(i for i, z in enumerate(acid.numbers) if z == 1 and d[i, oxygens].min() < 1.1)
        del acid[acidic]
        return Atoms(acid.numbers, positions=acid.positions)
    atoms = molecule(name)
    return Atoms(atoms.numbers, positions=atoms.positions)


def geometry_pool(name: str, size: int, rng: np.random.Generator) -> list[tuple[Atoms, float]]:
    """``size`` thermal 300 K geometries of one molecule (centred at its centre of mass), each
    with its isolated-fragment xTB energy."""
    atoms = build_molecule(name)
    atoms.calc = make_calc(CHARGES[name])
    BFGS(atoms, logfile=None).run(fmax=0.05, steps=500)
    thermalize_momenta(atoms, temperature_K=300.0, rng=rng)
    dyn = Langevin(
        atoms, 0.5 * units.fs, temperature_K=300.0, friction=0.01 / units.fs, fixcm=False, rng=rng
    )  # the centre of mass is subtracted from every kept geometry
    dyn.run(400)  # equilibrate
    pool = []
    for _ in range(size):
        dyn.run(20)
        frame = Atoms(atoms.numbers, positions=atoms.positions - atoms.get_center_of_mass())
        pool.append((frame, float(atoms.get_potential_energy())))
    return pool


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform (Haar) random proper rotation, [3, 3]."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def place_pair(a: Atoms, b: Atoms, rng, r_min: float, r_max: float, contact: float):
    """Rotate both molecules at random and put b's centre of mass at distance R from a's, with no
    intermolecular pair closer than ``contact`` x the sum of their van der Waals radii."""
    pos_a = a.positions @ random_rotation(rng).T
    rotated_b = b.positions @ random_rotation(rng).T
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction)
    radii = vdw_radii[a.numbers][:, None] + vdw_radii[b.numbers][None, :]
    while True:
        separation = rng.uniform(r_min, r_max)
        pos_b = rotated_b + separation * direction
        distances = np.linalg.norm(pos_a[:, None] - pos_b[None], axis=-1)
        if (distances >= contact * radii).all():
            closest = distances.min()
            break
    pair = Atoms(np.concatenate([a.numbers, b.numbers]), positions=np.vstack([pos_a, pos_b]))
    return pair, separation, float(closest)


def generate(args, rng: np.random.Generator) -> tuple[list[Atoms], Counter]:
    names = sorted({n for p in PAIRS for n in p})
    pools = {n: geometry_pool(n, args.pool_size, rng) for n in names}
    frames, rejected = [], Counter()
    while len(frames) < args.frames:
        name_a, name_b = PAIRS[rng.integers(len(PAIRS))]
        index_a, index_b = (int(rng.integers(args.pool_size)) for _ in range(2))
        (a, e_a), (b, e_b) = pools[name_a][index_a], pools[name_b][index_b]
        pair, separation, closest = place_pair(a, b, rng, args.r_min, args.r_max, args.contact)
        charge = CHARGES[name_a] + CHARGES[name_b]
        pair.calc = make_calc(charge)
        try:
            energy = pair.get_potential_energy()
        except CalculationFailed:
            rejected["SCF not converged"] += 1
            continue
        forces, xtb_charges = pair.get_forces(), pair.get_charges()
        q_a = float(xtb_charges[: len(a)].sum())
        if abs(q_a - CHARGES[name_a]) > args.charge_tolerance:
            rejected[f"fragment charge off by > {args.charge_tolerance} e"] += 1
            continue
        frame = Atoms(pair.numbers, positions=pair.positions, pbc=False)
        frame.info.update(
            pair=f"{name_a}|{name_b}",
            charge=charge,
            charge_a=CHARGES[name_a],
            charge_b=CHARGES[name_b],
            xtb_charge_a=round(q_a, 4),
            separation=round(float(separation), 4),
            min_distance=round(closest, 4),
            interaction_energy=float(energy - e_a - e_b),
            num_atoms_a=len(a),
            geometry_a=index_a,  # which of the molecule's pool geometries (for the bounds)
            geometry_b=index_b,
            config_type="pair",
        )
        frame.calc = SinglePointCalculator(frame, energy=float(energy), forces=forces)
        frames.append(frame)
    return frames, rejected


def write_card(path: Path, train, test, rejected: Counter, args) -> None:
    frames = train + test
    lines = [
        "# Long-range benchmark: molecule pairs at 2-20 Å (GFN2-xTB)",
        "",
        f"Files `longrange_train.xyz` ({len(train)} frames) and `longrange_test.xyz` "
        f"({len(test)} frames), generated by `python tools/make_longrange.py --frames "
        f"{args.frames} --seed {args.seed}` with {METHOD} via tblite "
        f"{metadata.version('tblite')} (licence: MIT, this project). Energies in eV, forces in "
        "eV/Å, non-periodic. Frames are split at random (seeded) into train and test.",
        "",
        "## Composition and charges",
        "| pair | total charge | atoms | frames | mean E_int (eV) | E_int range (eV) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name_a, name_b in PAIRS:
        group = [f for f in frames if f.info["pair"] == f"{name_a}|{name_b}"]
        if not group:
            continue
        e = np.array([f.info["interaction_energy"] for f in group])
        lines.append(
            f"| {name_a} + {name_b} | {CHARGES[name_a] + CHARGES[name_b]:+d} | {len(group[0])} | "
            f"{len(group)} | {e.mean():.3f} | {e.min():.3f} .. {e.max():.3f} |"
        )
    worst = max(abs(f.info["xtb_charge_a"] - f.info["charge_a"]) for f in frames)
    lines += [
        "",
        f"Largest deviation of a molecule's xTB (Mulliken) charge from its nominal charge: "
        f"{worst:.3f} e (tolerance {args.charge_tolerance} e). Redrawn frames: "
        + (", ".join(f"{n} {k}" for k, n in rejected.items()) if rejected else "none")
        + ". The charge is implied by the composition (each molecule has one charge state), so "
        "a model without a charge input can still learn it.",
        "",
        "## Separation histogram (centre-of-mass distance)",
        "| R (Å) | frames |",
        "|---|---:|",
    ]
    separations = np.array([f.info["separation"] for f in frames])
    counts, edges = np.histogram(separations, bins=SEPARATION_BINS)
    for lo, hi, n in zip(edges[:-1], edges[1:], counts):
        lines.append(f"| {lo:.0f}-{hi:.0f} | {n} |")
    floor = local_model_floor(frames, MODEL_CUTOFF)
    lines += [
        "",
        f"## Energy beyond a {MODEL_CUTOFF:g} Å cutoff",
        f"- {100 * floor['far_fraction']:.1f} % of the frames have no intermolecular atom pair "
        f"within {MODEL_CUTOFF:g} Å: a model with that cutoff sees two isolated molecules.",
        f"- Their mean |E_int| is {floor['mean_abs_e_int_far']:.3f} eV (all frames: "
        f"{floor['mean_abs_e_int_all']:.3f} eV); they carry "
        f"{100 * floor['far_share_of_abs_e_int']:.1f} % of the summed |E_int|.",
        f"- Lower bound on the energy MAE over those frames of any strictly local model with this "
        f"cutoff: {floor['local_floor_mev_per_atom']:.1f} meV/atom. Such a model predicts "
        "g(A) + h(B) from each molecule alone; the bound is the least mean |c_A + c_B - E_int| "
        "per atom over constants per molecule geometry (`eqna/data/longrange.py`).",
        "",
        "How a trained local model's error grows with separation: `python tools/compare_pooling.py`"
        " (its error-vs-separation table, `backbone` row).",
        "",
        "## Caveats",
        f"- Each molecule contributes {args.pool_size} thermal 300 K geometries, shared by train "
        "and test: the test split measures the intermolecular energy, not intramolecular transfer.",
        "- Gas-phase ions; oppositely charged pairs are excluded (see the generator's docstring): "
        "GFN2-xTB moves charge between separated ions of opposite sign.",
    ]
    path.write_text("\n".join(lines) + "\n")


def write_atomically(path: Path, frames: list[Atoms]) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".xyz", delete=False) as tmp:
        write(tmp.name, frames, format="extxyz")
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--frames", type=int, default=2800)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--pool-size", type=int, default=50, help="geometries per molecule")
    parser.add_argument("--r-min", type=float, default=2.0, help="smallest separation (Å)")
    parser.add_argument("--r-max", type=float, default=20.0, help="largest separation (Å)")
    parser.add_argument(
        "--contact", type=float, default=0.65, help="closest approach / sum of vdW radii"
    )
    parser.add_argument("--charge-tolerance", type=float, default=0.2, help="e per molecule")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        metadata.version("tblite")
    except metadata.PackageNotFoundError:
        print("make_longrange needs tblite: pip install 'eqna[xtb]'", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    frames, rejected = generate(args, rng)
    order = rng.permutation(len(frames))
    num_test = int(round(args.test_fraction * len(frames)))
    test = [frames[i] for i in order[:num_test]]
    train = [frames[i] for i in order[num_test:]]
    write_atomically(args.out / "longrange_train.xyz", train)
    write_atomically(args.out / "longrange_test.xyz", test)
    write_card(args.out / "longrange.md", train, test, rejected, args)
    print((args.out / "longrange.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
