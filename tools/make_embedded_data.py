"""Generate the small GFN2-xTB molecular dataset shipped inside ``eqna``.

What
----
``eqna/data/embedded/xtb_molecules.xyz`` is a ~1500-frame extended-XYZ file of
small H/C/N/O molecules (13 molecules from ``ase.collections.g2`` plus the enol
form of acetylacetone, C5H8O2) with energies (eV) and forces (eV/Å) computed
with GFN2-xTB through ``tblite``.  The first four frames are isolated H, C, N
and O atoms (``config_type="IsolatedAtom"``) in their ground-state spin
multiplicities, usable as reference atomic energies (E0s).

How
---
Each molecule is pre-optimised with BFGS (fmax 0.05 eV/Å), then sampled with
Langevin molecular dynamics (0.5 fs step, friction 0.01/fs) at several
temperatures between 300 and 1000 K.  After an equilibration period a frame is
kept every ``--stride`` steps so that consecutive frames are decorrelated.  A
trajectory in which a bond of the starting topology stretches beyond twice its
initial length *and* the molecule falls apart into disconnected fragments is
considered dissociated: it is discarded and restarted with a new random
stream.  Intramolecular rearrangements that keep the molecule in one piece
(the enol O-H...O proton transfer of acetylacetone) are kept.  All randomness
derives from ``--seed`` and the calculations run single-threaded, so the output
is reproducible.

Why
---
The package needs a small, license-clean, physically meaningful dataset that
is available without any external download: for examples, quick-start
training, documentation and tests.  A real quantum-chemistry method (GFN2-xTB)
gives realistic potential-energy surfaces at negligible cost; sampling up to
1000 K covers strongly distorted geometries, not just the harmonic region.

Usage::

    pip install tblite
    python tools/make_embedded_data.py            # ~ a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from importlib import metadata
from pathlib import Path

# Small molecules: single-threaded xTB is fastest and bit-for-bit reproducible.
# Must be set before tblite (and its OpenMP runtime) is imported.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402
from ase.collections import g2  # noqa: E402
from ase.constraints import FixCom  # noqa: E402
from ase.data import covalent_radii  # noqa: E402
from ase.io import read, write  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import Stationary, ZeroRotation  # noqa: E402

try:  # ASE >= 3.29
    from ase.md.velocitydistribution import thermalize_momenta  # noqa: E402
except ImportError:  # older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
from ase.optimize import BFGS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "eqna" / "data" / "embedded" / "xtb_molecules.xyz"

METHOD = "GFN2-xTB"

# Small closed-shell H/C/N/O molecules from the G2 collection.
G2_MOLECULES = [
    "CH4",
    "H2O",
    "NH3",
    "CH3OH",
    "C2H6",
    "C2H4",
    "H2CO",
    "HCOOH",
    "CH3CHO",
    "CH3CH2OH",
    "H3CNH2",
    "CH3CN",
    "CH3COOH",
]

# Acetylacetone (pentane-2,4-dione), cis-enol tautomer with the intramolecular
# O-H...O hydrogen bond.  Starting geometry (Å) from a 300 K MD snapshot; it is
# re-optimised with GFN2-xTB before sampling.
ACAC_NAME = "acetylacetone"
ACAC_GEOMETRY = [
    ("C", 0.0787, 1.4023, 0.0824),
    ("C", 0.6790, 0.1495, -0.3402),
    ("C", 0.1312, -1.0285, 0.0429),
    ("O", -1.0271, -1.1693, 0.6715),
    ("C", 0.8155, -2.3161, -0.2609),
    ("O", -1.0493, 1.4899, 0.6270),
    ("C", 1.1197, 2.6489, 0.0195),
    ("H", 1.6335, 0.0738, -0.8220),
    ("H", 1.7202, -2.3702, 0.3197),
    ("H", 1.2426, -2.2387, -1.2911),
    ("H", 0.1161, -3.1397, -0.0261),
    ("H", -1.4133, -0.2466, 0.6725),
    ("H", 0.6354, 3.5563, -0.2885),
    ("H", 1.9616, 2.4812, -0.6385),
    ("H", 1.4682, 2.7063, 1.0568),
]
ACAC_FRAME_FACTOR = 2  # acetylacetone (largest, most flexible) gets 2x frames

# Ground-state spin multiplicities of the free atoms (2S+1).
ATOM_MULTIPLICITY = {"H": 2, "C": 3, "N": 4, "O": 3}

DEFAULT_TEMPERATURES = (300.0, 475.0, 650.0, 825.0, 1000.0)

BOND_SCALE = 1.2  # bonded if d < 1.2 * (r_cov,i + r_cov,j) in the optimised geometry
DISSOCIATION_FACTOR = 2.0  # dissociated if a bond exceeds 2x its initial length
MAX_ATTEMPTS = 5
CHECK_EVERY = 5  # MD steps between dissociation checks


def make_calc(multiplicity: int = 1):
    from tblite.ase import TBLite

    return TBLite(method=METHOD, charge=0, multiplicity=multiplicity, verbosity=0)


def build_acac() -> Atoms:
    symbols = [row[0] for row in ACAC_GEOMETRY]
    positions = [row[1:] for row in ACAC_GEOMETRY]
    return Atoms(symbols=symbols, positions=positions)


def starting_structures() -> list[tuple[str, Atoms]]:
    mols = []
    for name in G2_MOLECULES:
        atoms = g2[name]
        mols.append((name, Atoms(atoms.numbers, positions=atoms.positions)))
    mols.append((ACAC_NAME, build_acac()))
    return mols


def snapshot(atoms: Atoms, energy: float, forces: np.ndarray, info: dict) -> Atoms:
    """Clean copy (species + positions only) carrying energy/forces as calc results."""
    frame = Atoms(atoms.numbers, positions=atoms.positions.copy(), pbc=False)
    frame.info.update(info)
    frame.calc = SinglePointCalculator(frame, energy=float(energy), forces=np.array(forces))
    return frame


def isolated_atoms() -> list[Atoms]:
    frames = []
    for sym, mult in ATOM_MULTIPLICITY.items():
        atoms = Atoms(sym, positions=[[0.0, 0.0, 0.0]], pbc=False)
        atoms.calc = make_calc(multiplicity=mult)
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        frames.append(
            snapshot(atoms, energy, forces, {"config_type": "IsolatedAtom", "multiplicity": mult})
        )
    return frames


def bond_topology(atoms: Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j) bonded in ``atoms`` and their reference lengths."""
    d = atoms.get_all_distances()
    r = covalent_radii[atoms.numbers]
    cutoff = BOND_SCALE * (r[:, None] + r[None, :])
    i, j = np.nonzero(np.triu(d < cutoff, k=1))
    return i, j, d[i, j]


def _connected(n: int, i: np.ndarray, j: np.ndarray) -> bool:
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    frontier = [0]
    while frontier:
        k = frontier.pop()
        nbrs = np.concatenate([j[i == k], i[j == k]])
        for nb in nbrs[~seen[nbrs]]:
            seen[nb] = True
            frontier.append(nb)
    return bool(seen.all())


def broken_bonds(atoms: Atoms, topo) -> np.ndarray:
    """Mask of starting-topology bonds stretched beyond DISSOCIATION_FACTOR x initial length."""
    i, j, d0 = topo
    d = np.linalg.norm(atoms.positions[i] - atoms.positions[j], axis=1)
    return d > DISSOCIATION_FACTOR * d0


def is_dissociated(atoms: Atoms, topo) -> bool:
    """True if a starting bond broke and the molecule fell apart.

    A bond of the starting topology longer than DISSOCIATION_FACTOR x its initial
    length counts as broken.  If some bond broke, the molecule is still accepted
    when the atoms remain one connected graph, using the unbroken starting bonds
    plus any pair currently within bonding distance: this keeps intramolecular
    rearrangements such as the enol proton transfer O-H...O -> O...H-O of
    acetylacetone (same molecule, both atoms still bonded) but rejects real
    fragmentation.
    """
    i, j, _ = topo
    broken = broken_bonds(atoms, topo)
    if not broken.any():
        return False
    _, jn, _ = current = bond_topology(atoms)
    ii = np.concatenate([i[~broken], current[0]])
    jj = np.concatenate([j[~broken], jn])
    return not _connected(len(atoms), ii, jj)


def split_counts(total: int, parts: int) -> list[int]:
    base, rem = divmod(total, parts)
    return [base + (1 if k < rem else 0) for k in range(parts)]


def run_md(
    name: str,
    atoms0: Atoms,
    temperature: float,
    n_frames: int,
    *,
    seed_seq: list[int],
    equil_steps: int,
    stride: int,
    timestep_fs: float,
    friction_per_fs: float,
    topo,
) -> tuple[list[Atoms], int, int]:
    """One Langevin trajectory; returns (frames, restarts, frames with a rearranged bond)."""
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng(seed_seq + [attempt])
        atoms = atoms0.copy()
        atoms.calc = make_calc()
        thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
        Stationary(atoms)
        ZeroRotation(atoms)
        # Fix the centre of mass with a constraint (fixcm=True is deprecated and
        # biases the NVT ensemble of small molecules).
        atoms.set_constraint(FixCom())
        dyn = Langevin(
            atoms,
            timestep_fs * units.fs,
            temperature_K=temperature,
            friction=friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
        frames: list[Atoms] = []
        n_rearranged = 0
        total_steps = equil_steps + n_frames * stride
        step = 0
        ok = True
        while step < total_steps:
            dyn.run(CHECK_EVERY)
            step += CHECK_EVERY
            if is_dissociated(atoms, topo):
                ok = False
                break
            if step > equil_steps and (step - equil_steps) % stride == 0:
                n_rearranged += int(broken_bonds(atoms, topo).any())
                frames.append(
                    snapshot(
                        atoms,
                        atoms.get_potential_energy(),
                        atoms.get_forces(),
                        {"config_type": name, "temperature_K": float(temperature)},
                    )
                )
        if ok:
            return frames, attempt, n_rearranged
        print(
            f"  WARNING: {name} at {temperature:.0f} K dissociated at step {step} "
            f"(attempt {attempt + 1}); restarting with a new random stream",
            flush=True,
        )
    raise RuntimeError(f"{name} at {temperature:.0f} K dissociated {MAX_ATTEMPTS} times")


def validate(path: Path, expected: dict[str, int], max_force_limit: float = 20.0) -> float:
    frames = read(path, ":")
    counts: dict[str, int] = {}
    fmax = 0.0
    for atoms in frames:
        ct = atoms.info["config_type"]
        counts[ct] = counts.get(ct, 0) + 1
        e = atoms.get_potential_energy()
        f = atoms.get_forces()
        assert np.isfinite(e), f"non-finite energy in {ct}"
        assert f.shape == (len(atoms), 3) and np.all(np.isfinite(f)), f"bad forces in {ct}"
        assert not atoms.pbc.any()
        if ct != "IsolatedAtom":
            assert "temperature_K" in atoms.info
        fmax = max(fmax, float(np.abs(f).max()))
    assert counts == expected, f"frame counts differ: {counts} != {expected}"
    assert frames[0].info["config_type"] == "IsolatedAtom"
    assert fmax < max_force_limit, f"max |force| {fmax:.2f} eV/Å exceeds {max_force_limit}"
    return fmax


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output extxyz file")
    parser.add_argument(
        "--frames-per-molecule",
        type=int,
        default=100,
        help=f"frames per G2 molecule ({ACAC_NAME} gets {ACAC_FRAME_FACTOR}x)",
    )
    parser.add_argument("--seed", type=int, default=20240601, help="master random seed")
    parser.add_argument(
        "--temperatures",
        type=float,
        nargs="+",
        default=list(DEFAULT_TEMPERATURES),
        help="MD temperatures in K (one Langevin run per molecule and temperature)",
    )
    parser.add_argument("--equil-steps", type=int, default=1000, help="discarded MD steps per run")
    parser.add_argument("--stride", type=int, default=40, help="MD steps between kept frames")
    parser.add_argument("--timestep", type=float, default=0.5, help="MD time step in fs")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs")
    parser.add_argument("--max-size-mb", type=float, default=3.0, help="fail if file is larger")
    args = parser.parse_args(argv)

    if args.stride % CHECK_EVERY or args.equil_steps % CHECK_EVERY:
        parser.error(f"--stride and --equil-steps must be multiples of {CHECK_EVERY}")

    t_start = time.perf_counter()
    try:
        tblite_version = metadata.version("tblite")
    except metadata.PackageNotFoundError:
        tblite_version = "unknown"
    print(f"{METHOD} via tblite {tblite_version}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")

    frames = isolated_atoms()
    expected = {"IsolatedAtom": len(frames)}
    for fr in frames:
        print(
            f"  isolated {fr.get_chemical_symbols()[0]:2s} (2S+1={fr.info['multiplicity']}): "
            f"E = {fr.get_potential_energy():.6f} eV"
        )

    summary = []
    temps = sorted(args.temperatures)
    for imol, (name, atoms) in enumerate(starting_structures()):
        t0 = time.perf_counter()
        atoms.calc = make_calc()
        opt = BFGS(atoms, logfile=None)
        converged = opt.run(fmax=0.05, steps=500)
        if not converged:
            print(f"  WARNING: {name} pre-optimisation not converged in 500 steps")
        atoms = Atoms(atoms.numbers, positions=atoms.positions.copy())
        topo = bond_topology(atoms)

        n_total = args.frames_per_molecule * (ACAC_FRAME_FACTOR if name == ACAC_NAME else 1)
        mol_frames: list[Atoms] = []
        restarts = 0
        rearranged = 0
        for itemp, (temp, n) in enumerate(
            zip(temps, split_counts(n_total, len(temps)), strict=True)
        ):
            if n == 0:
                continue
            run_frames, n_restart, n_rearr = run_md(
                name,
                atoms,
                temp,
                n,
                seed_seq=[args.seed, imol, itemp],
                equil_steps=args.equil_steps,
                stride=args.stride,
                timestep_fs=args.timestep,
                friction_per_fs=args.friction,
                topo=topo,
            )
            mol_frames.extend(run_frames)
            restarts += n_restart
            rearranged += n_rearr
        energies = np.array([f.get_potential_energy() for f in mol_frames])
        fmax = max(float(np.abs(f.get_forces()).max()) for f in mol_frames)
        summary.append(
            (
                name,
                len(atoms),
                len(mol_frames),
                energies.min(),
                energies.max(),
                fmax,
                restarts,
                rearranged,
            )
        )
        expected[name] = len(mol_frames)
        frames.extend(mol_frames)
        print(
            f"  {name:14s} {len(atoms):3d} atoms  {len(mol_frames):4d} frames  "
            f"{opt.nsteps:3d} BFGS steps  {restarts} restarts  {rearranged} rearranged  "
            f"{time.perf_counter() - t0:6.1f} s",
            flush=True,
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write(args.out, frames, format="extxyz")
    size_mb = args.out.stat().st_size / 1e6
    fmax_all = validate(args.out, expected)

    temps_str = ",".join(f"{t:.0f}" for t in temps)
    print()
    print(
        f"{'molecule':14s} {'atoms':>5s} {'frames':>6s} {'T (K)':>22s} "
        f"{'E_min (eV)':>12s} {'E_max-E_min':>11s} {'max|F|':>7s} {'restarts':>8s} {'rearr.':>6s}"
    )
    for name, nat, nfr, emin, emax, fmax, nres, nrearr in summary:
        print(
            f"{name:14s} {nat:5d} {nfr:6d} {temps_str:>22s} "
            f"{emin:12.4f} {emax - emin:11.4f} {fmax:7.2f} {nres:8d} {nrearr:6d}"
        )
    print(
        "(rearr. = kept frames in which a starting bond is > "
        f"{DISSOCIATION_FACTOR:g}x its initial length but the molecule is intact,"
        " e.g. enol proton transfer)"
    )
    n_mol = sum(s[2] for s in summary)
    print(f"{'IsolatedAtom':14s} {1:5d} {expected['IsolatedAtom']:6d}")
    print(
        f"\nwrote {args.out} : {len(frames)} frames ({n_mol} molecular + "
        f"{expected['IsolatedAtom']} isolated atoms), {size_mb:.2f} MB, "
        f"max |F| = {fmax_all:.2f} eV/Å, wall time {time.perf_counter() - t_start:.0f} s"
    )
    if size_mb > args.max_size_mb:
        print(f"ERROR: file exceeds {args.max_size_mb} MB; reduce --frames-per-molecule")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
