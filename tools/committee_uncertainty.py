"""Does a committee's force spread say where its forces are wrong? Prints a table.

For every labelled set: per structure, the committee-mean force error (RMSE over atoms and
components, against the labels) and the predicted spread (mean over atoms of ``forces_std``),
their Spearman rank correlation, and the same per atom (|error| of the atom's force vector
against its ``forces_std``). Sets further from the training data come from the same
labelled files (the frames whose reference energy lies above the training set's 95th
percentile: the hot tail) and from MD driven by the committee itself at higher temperatures
(Langevin; no labels, so only the predicted spread, which should grow).

    python tools/committee_uncertainty.py acac-committee \\
        --train ../shared/data/molecules/acac_train_300K.xyz \\
        --test ../shared/data/molecules/acac_test_MD_300K.xyz --md-temperatures 600 900 1200
"""

import argparse
import json
from pathlib import Path

import numpy as np


def predict(calc, frames):
    """(per-structure error RMSE or None, per-structure mean std, per-atom errors, stds), eV/Å."""
    errors, spreads, atom_errors, atom_spreads = [], [], [], []
    for atoms in frames:
        reference = atoms.get_forces() if atoms.calc is not None else None
        probe = atoms.copy()
        calc.calculate(probe, ["energy", "forces"])
        forces, std = calc.results["forces"], calc.results["forces_std"]
        spreads.append(float(std.mean()))
        atom_spreads.extend(std.tolist())
        if reference is not None:
            diff = forces - reference
            errors.append(float(np.sqrt((diff**2).mean())))
            atom_errors.extend(np.linalg.norm(diff, axis=1).tolist())
    return errors or None, spreads, atom_errors or None, atom_spreads


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def hot_tail(train, test, quantile: float = 0.95):
    """Test frames whose energy per atom lies above the training set's ``quantile``."""
    per_atom = np.array([a.get_potential_energy() / len(a) for a in train])
    limit = np.quantile(per_atom, quantile)
    return [a for a in test if a.get_potential_energy() / len(a) > limit]


def md_frames(calc, start, temperature: float, steps: int, every: int, seed: int = 0):
    """(frames, None or why the run stopped early) of a Langevin run at ``temperature`` driven
    by ``calc`` (unlabelled), through eqna-md's own integrator set-up (friction 0.01 / fs,
    0.5 fs steps)."""
    from eqna.md.dynamics import make_dynamics, set_velocities

    atoms = start.copy()
    atoms.calc = calc
    rng = np.random.default_rng(seed)
    set_velocities(atoms, temperature, rng)
    dyn = make_dynamics(atoms, "langevin", 0.5, temperature, 0.01, 0.0, rng)
    frames = []
    for _ in range(steps // every):
        try:
            dyn.run(every)
        except ValueError as err:  # the geometry check refused a frame: the run fell apart
            return frames, f"stopped after {len(frames) * every} steps: {err}"
        frame = atoms.copy()
        frame.calc = None
        frames.append(frame)
    return frames, None


def row(name, frames, result) -> dict:
    errors, spreads, atom_errors, atom_spreads = result
    out = {"set": name, "frames": len(frames), "mean_std_meV_A": 1000 * float(np.mean(spreads))}
    if errors is not None:
        out["force_rmse_meV_A"] = 1000 * float(np.sqrt(np.mean(np.square(errors))))
        out["spearman_per_structure"] = spearman(errors, spreads)
        out["spearman_per_atom"] = spearman(atom_errors, atom_spreads)
    return out


def _fmt(r: dict, key: str, spec: str) -> str:
    return format(r[key], spec) if key in r else "–"


def table(rows) -> str:
    lines = [
        "| set | frames | force RMSE of the mean (meV/Å) | mean predicted std (meV/Å) "
        "| Spearman ρ per structure | ρ per atom |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['set']} | {r['frames']} | {_fmt(r, 'force_rmse_meV_A', '.1f')} "
            f"| {r['mean_std_meV_A']:.1f} | {_fmt(r, 'spearman_per_structure', '.2f')} "
            f"| {_fmt(r, 'spearman_per_atom', '.2f')} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    import torch
    from ase.io import read

    from eqna.calculators import EqnaCalculator

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("committee", help="committee folder or zoo name")
    parser.add_argument("--train", required=True, help="the members' training file")
    parser.add_argument("--test", required=True, help="labelled frames the members never saw")
    parser.add_argument("--md-temperatures", type=float, nargs="*", default=[600.0, 900.0])
    parser.add_argument("--md-steps", type=int, default=2000)
    parser.add_argument("--md-every", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    calc = EqnaCalculator(args.committee, dtype="float64")
    if len(calc.committee) < 2:
        parser.error(f"{args.committee}: not a committee (one model)")
    train, test = read(args.train, ":"), read(args.test, ":")
    sets = [
        (f"{Path(args.test).name}", test),
        ("hot tail of it (E > train 95 %)", hot_tail(train, test)),
    ]
    rows = [row(name, frames, predict(calc, frames)) for name, frames in sets if frames]
    for temperature in args.md_temperatures:
        frames, stopped = md_frames(calc, test[0], temperature, args.md_steps, args.md_every)
        if stopped:
            print(f"MD at {temperature:g} K {stopped}", flush=True)
        if not frames:
            continue
        early = ", stopped early" if stopped else ""
        name = f"committee MD at {temperature:g} K (unlabelled{early})"
        rows.append(row(name, frames, predict(calc, frames)))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    print(f"\n{len(calc.committee)} members, {args.committee}\n\n{text}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
