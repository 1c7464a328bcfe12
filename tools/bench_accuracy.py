"""eqna against MACE 0.3.16 at equal wall-clock training budgets, on the same data and test files.

    python tools/bench_accuracy.py --quick                 # CI: eqna only, acac, 0.3 min, < 2 min
    python tools/bench_accuracy.py --quick --mace /work/mace-venv       # the whole MACE pipeline
    python tools/bench_accuracy.py --mace /work/mace-venv --minutes 10 30 \\
        --datasets acac ethanol si --json runs/bench_accuracy.json
    python tools/bench_accuracy.py --mace VENV --datasets acac --eqna-config acac=my.yaml \\
        --mace-dtype float32 --mace-arg=--stress_weight=100

Data sets (``--data-dir``, default ``../shared/data``, never written): ``acac`` (acac_train_300K,
E0s from acac_isolated_atoms, test acac_test_MD_300K), ``ethanol`` (ethanol_train /
ethanol_test_MD, E0s from ethanol_isolated_atoms), ``si`` (mlearn_Si_train / _test, with stress,
least-squares E0s). Both codes split 10 % of the training file off for validation. eqna trains
``configs/<set>.yaml`` (or ``--eqna-config SET=PATH``) with the data set's files and
``training.max_time_minutes`` as overrides. MACE (only with ``--mace VENV``; run as a subprocess
of that venv, never imported) trains a MACE-small-like model with eqna's cutoff, batch sizes and
seed; :mod:`eqna.benchmarks.accuracy` has the settings and the error definitions,
:mod:`eqna.benchmarks.accuracy_runs` how the budget, the kill and the evaluation work.
``--subset N`` trains and tests both on the first N structures of each file (pipeline checks;
``--quick`` uses 12, because one MACE epoch of full acac takes minutes on one CPU thread).

Prints one table per data set and budget: eqna, MACE and eqna/MACE (errors: < 1 means eqna is
more accurate; epochs and structures/s: > 1 means eqna trains faster). ``--json`` writes every
number, the MACE arguments and versions. Run folders: ``--out``/<set>_<minutes>min/ (emptied
first; eqna_train.log, mace_train.log, mace_predict.log, both runs). Exit 1 names the log of the
subprocess that failed.
"""

import argparse
import json
import sys
from pathlib import Path

from eqna.benchmarks.accuracy import DATASETS, REPO, MaceSettings, format_table
from eqna.benchmarks.accuracy_runs import BenchError, Case, run_case

QUICK_MINUTES, QUICK_SUBSET = 0.3, 12


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=None)
    p.add_argument("--minutes", nargs="+", type=float, default=None, help="budgets (default 10)")
    p.add_argument("--mace", type=Path, metavar="VENV", help="MACE venv; without it eqna only")
    p.add_argument("--eqna-config", action="append", default=[], metavar="SET=PATH")
    p.add_argument("--mace-dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--stage-two-fraction", type=float, default=0.75, help="0: no Stage Two")
    p.add_argument("--mace-eqna-weights", action="store_true", help="eqna's loss weights")
    p.add_argument("--mace-arg", action="append", default=[], help="--mace-arg=--flag=value")
    p.add_argument("--subset", type=int, help="first N structures of train and test files")
    quick = f"CI: {QUICK_MINUTES} min, acac, --subset {QUICK_SUBSET}"
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=REPO / "runs" / "bench_accuracy")
    p.add_argument("--json", type=Path, help="write the results here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    datasets = args.datasets or (["acac"] if args.quick else sorted(DATASETS))
    minutes = args.minutes or ([QUICK_MINUTES] if args.quick else [10.0])
    subset = args.subset or (QUICK_SUBSET if args.quick else None)
    configs = dict(item.split("=", 1) for item in args.eqna_config)
    mace = None
    if args.mace is not None:
        if not (args.mace / "bin" / "mace_run_train").is_file():
            parser().error(f"--mace {args.mace}: no bin/mace_run_train in that venv")
        fraction = args.stage_two_fraction or None
        mace = MaceSettings(args.mace.resolve(), args.mace_dtype, fraction,
                            args.mace_eqna_weights, tuple(args.mace_arg))  # fmt: skip
    cases = []
    for name in datasets:
        for budget in minutes:
            out = args.out / f"{name}_{budget:g}min"
            case = Case(name, budget, out, args.data_dir, configs.get(name), subset)
            try:
                cases.append(run_case(case, mace))
            except BenchError as err:
                print(f"error: {name}, {budget:g} min: {err}", file=sys.stderr)
                return 1
            print(format_table(cases[-1]) + "\n", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(cases, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
