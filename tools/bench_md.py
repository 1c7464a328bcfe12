"""MD speed and memory of an eqna model through EqnaCalculator and ASE's VelocityVerlet.

Every case runs in a fresh subprocess, so the peak RSS reported (``ru_maxrss``) is that case's
alone; torch allocations are invisible to tracemalloc. Prints a markdown table.

    python tools/bench_md.py                            # all cases, random zoo-architecture model
    python tools/bench_md.py --cases acac-float32 --steps 200
    python tools/bench_md.py --model path/to/model.pt --cases si512-float64
    python tools/bench_md.py --config zoo/equivariant_na.yaml   # another zoo architecture
    python tools/bench_md.py --mace /work/mace-venv --json md.json   # MACE beside every case
    python tools/bench_md.py --export aoti        # the model exported (eqna-export) beside eager

Speed does not depend on training, so the default model is the architecture of
``zoo/equivariant.yaml`` (or ``--config``) with random weights, elements H, C, N, O, Si.

``--mace VENV`` also times a random MACE "small" (``MACE_SMALL``) through its own
``MACECalculator`` on the same structure, steps and threads, right after each eqna case so that
drift of the machine's load hits both. MACE runs in ``VENV/bin/python`` on this file's worker
entry point; eqna never imports it.

``--export KIND`` exports the same model once per dtype (``eqna.export``, timed, in a worker
of its own) and runs each case again through the exported ``.pt2``, right after the eager one.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = {"acac": 50, "si512": 5}  # system -> default number of timed steps per block
DTYPES = ("float32", "float64")
REFERENCE = (  # without --mace; measured once, by hand
    "old reference, MACE 0.3.16 (64x0e+64x1o, l_max 1, r_max 5) on the 2-core dev machine: "
    "acac 22 / 14 steps/s (float32 / float64), Si-512 0.72 / 0.32 steps/s"
)
# MACE "small", random weights: what mace 0.3.16's _build_model passes for ``--model MACE``
# (a ScaleShiftMACE, non-residual first interaction, shift 0) with mace_run_train's defaults,
# but for the hidden irreps, avg_num_neighbors and the scale (1, no data to take a std from).
MACE_SMALL = {
    "hidden_irreps": "64x0e+64x1o",
    "max_ell": 3,
    "correlation": 3,
    "num_interactions": 2,
    "r_max": 5.0,
    "num_bessel": 8,
    "num_polynomial_cutoff": 5,
    "radial_MLP": [64, 64, 64],
    "radial_type": "bessel",
    "interaction_cls": "RealAgnosticResidualInteractionBlock",
    "interaction_cls_first": "RealAgnosticInteractionBlock",
    "gate": "silu",
    "MLP_irreps": "16x0e",
    "atomic_numbers": [1, 6, 7, 8, 14],
    "avg_num_neighbors": 10.0,
    "atomic_inter_scale": [1.0],
    "atomic_inter_shift": [0.0],
    "heads": ["Default"],
    "apply_cutoff": True,
    "use_reduced_cg": False,
    "use_so3": False,
    "use_agnostic_product": False,
    "use_last_readout_only": False,
    "use_embedding_readout": False,
    "use_edge_irreps_first": False,
    "edge_irreps": None,
    "pair_repulsion": False,
    "distance_transform": "None",
    "embedding_specs": None,
    "cueq_config": None,
}


def make_system(name: str):
    """``acac``: acetylacetone, first embedded frame; ``si512``: rattled 4x4x4 diamond Si."""
    from ase.build import bulk
    from ase.io import read

    if name == "acac":
        path = REPO / "eqna" / "data" / "embedded" / "xtb_molecules.xyz"
        frames = read(path, index=":")
        atoms = next(a for a in frames if a.info.get("config_type") == "acetylacetone")
        atoms.calc = None
        return atoms
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (4, 4, 4)
    atoms.rattle(0.05, seed=0)
    return atoms


def make_model(channels: int | None, config: str):
    """Random model with the architecture of the ``config`` YAML's model section."""
    import torch

    from eqna.models.io import build_model
    from eqna.train.config import load_architecture

    arch = load_architecture(REPO / config)
    family = arch.pop("family")
    if channels:
        arch["num_channels"] = channels
    torch.manual_seed(0)
    fixed = {"elements": [1, 6, 7, 8, 14], "atomic_energies": [0.0] * 5, "avg_num_neighbors": 10.0}
    return build_model(family, {**fixed, **arch})


def time_md(atoms, calc, spec: dict) -> dict:
    """Best speed over ``repeats`` blocks of ``steps`` MD steps, and the RSS they cost.

    The best block is the one least disturbed by other load on the machine (timeit's rule).
    """
    import numpy as np
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    atoms.calc = calc
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dyn.run(spec["warmup"])
    elapsed = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        dyn.run(spec["steps"])
        elapsed.append(time.perf_counter() - start)
    return {
        "atoms": len(atoms),
        "steps_per_s": spec["steps"] / min(elapsed),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        "md_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024,
    }


def run_eqna(spec: dict) -> dict:
    """One eqna case, inside the subprocess."""
    import torch

    from eqna.calculators import EqnaCalculator

    torch.set_num_threads(spec["threads"])
    model = spec["model"] or make_model(spec["channels"], spec["config"])
    calc = EqnaCalculator(model, dtype=spec["dtype"])
    result = time_md(make_system(spec["system"]), calc, spec)
    energy_model = calc.model.network
    blocks = getattr(energy_model, "blocks", None)
    return {
        "irreps": str(blocks[0].irreps_out) if blocks is not None else type(energy_model).__name__,
        "neural_atoms": len(getattr(energy_model, "neural_atoms", ())),
        "params": sum(p.numel() for p in calc.model.parameters()),
        **result,
        "rebuilds": calc.neighbour_list.num_builds,
    }


def eqna_model(spec: dict):
    """The case's model (``--model`` or the random one), frozen, in the case's dtype."""
    from eqna.calculators.ase import prepare_model

    model = spec["model"] or make_model(spec["channels"], spec["config"])
    return prepare_model(model, "cpu", spec["dtype"])[0]


def run_export(spec: dict) -> dict:
    """Export the case's model to ``spec["path"]`` (in its own process: compiling is heavy)."""
    import torch

    from eqna.export import export_model

    torch.set_num_threads(spec["threads"])
    start = time.perf_counter()
    export_model(eqna_model(spec), spec["path"], spec["kind"])
    return {"seconds": time.perf_counter() - start}


def run_exported(spec: dict) -> dict:
    """One case through the exported file ``spec["path"]``."""
    import torch

    from eqna.calculators import EqnaCalculator

    torch.set_num_threads(spec["threads"])
    calc = EqnaCalculator(spec["path"])
    result = time_md(make_system(spec["system"]), calc, spec)
    return {**result, "rebuilds": calc.neighbour_list.num_builds}


def make_mace(dtype: str):
    """Random ``MACE_SMALL`` (seed 0) in ``dtype``, as mace_run_train builds it."""
    import numpy as np
    import torch
    from e3nn import o3
    from mace import modules

    torch.set_default_dtype(getattr(torch, dtype))
    torch.manual_seed(0)
    kwargs = dict(MACE_SMALL)
    for key in ("hidden_irreps", "MLP_irreps"):
        kwargs[key] = o3.Irreps(kwargs[key])
    for key in ("interaction_cls", "interaction_cls_first"):
        kwargs[key] = modules.interaction_classes[kwargs[key]]
    kwargs["gate"] = modules.gate_dict[kwargs["gate"]]
    num_elements = len(kwargs["atomic_numbers"])
    energies = np.zeros((len(kwargs["heads"]), num_elements))  # [heads, elements], as run_train
    return modules.ScaleShiftMACE(num_elements=num_elements, atomic_energies=energies, **kwargs)


def run_mace(spec: dict) -> dict:
    """One MACE case, inside a subprocess of the MACE venv: saved, then loaded as users do."""
    import tempfile

    import torch
    from mace.calculators import MACECalculator

    torch.set_num_threads(spec["threads"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mace_small.model"
        torch.save(make_mace(spec["dtype"]), path)
        calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype=spec["dtype"])
    result = time_md(make_system(spec["system"]), calc, spec)
    return {"params": sum(p.numel() for p in calc.models[0].parameters()), **result}


def spawn(spec: dict, python: str = sys.executable) -> dict:
    """Run one case in a fresh ``python``; its last stdout line is the JSON result."""
    proc = subprocess.run(
        [python, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True
    )
    if proc.returncode:
        name = f"{spec['engine']} {spec['system']}-{spec['dtype']}"
        raise RuntimeError(f"case {name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(spec: dict, mace_python: str | None, exported: dict) -> dict:
    """eqna's case, then (with ``exported``: dtype -> .pt2) the exported model's and (with
    ``mace_python``) MACE's on the same spec right after it."""
    record = {**spec, "eqna": spawn({**spec, "engine": "eqna"})}
    if exported:
        path = exported[spec["dtype"]]
        record["exported"] = spawn({**spec, "engine": "exported", "path": path})
        record["exported_over_eager"] = (
            record["exported"]["steps_per_s"] / record["eqna"]["steps_per_s"]
        )
    if mace_python:
        record["mace"] = spawn({**spec, "engine": "mace"}, mace_python)
        record["eqna_over_mace"] = record["eqna"]["steps_per_s"] / record["mace"]["steps_per_s"]
    return record


def table_row(record: dict) -> str:
    """One markdown row; MACE's speed and eqna/MACE when the record has them."""
    r = record["eqna"]
    row = (
        f"| {r['irreps']}{' + neural atoms' if r['neural_atoms'] else ''}, {r['params']:,} "
        f"| {record['system']} | {r['atoms']} | {record['dtype']} "
        f"| {r['steps_per_s']:.3g} | {r['peak_mb']:.0f} | {r['md_mb']:.0f} | {r['rebuilds']} |"
    )
    if "exported" in record:
        row += f" {record['exported']['steps_per_s']:.3g} | {record['exported_over_eager']:.2f} |"
    if "mace" in record:
        row += f" {record['mace']['steps_per_s']:.3g} | {record['eqna_over_mace']:.2f} |"
    return row


def table_head(mace: bool, export: str | None = None) -> str:
    """Header and alignment lines of the table."""
    head = (
        "| model (irreps, params) | system | atoms | dtype | MD steps/s | peak RSS (MB) "
        "| MD ΔRSS (MB) | NL builds |"
    )
    align = "|---|---|---:|---|---:|---:|---:|---:|"
    if export:
        head += f" exported ({export}) steps/s | exported/eager |"
        align += "---:|---:|"
    if mace:
        head += " MACE steps/s | eqna/MACE |"
        align += "---:|---:|"
    return f"{head}\n{align}"


def note(args, mace_params: int | None) -> str:
    """The line under the table: the run's settings, and which MACE it compares with."""
    settings = f"torch threads = {args.threads}, dt 0.5 fs, 300 K start."
    if mace_params is None:
        return f"Note: {REFERENCE}; {settings}"
    m = MACE_SMALL
    return (
        f"Note: MACE = mace-torch ScaleShiftMACE, random weights, {mace_params:,} params: "
        f"{m['hidden_irreps']}, max_ell {m['max_ell']}, correlation {m['correlation']}, "
        f"{m['num_interactions']} interactions, r_max {m['r_max']}, same structure, steps and "
        f"threads, run after each eqna case; {settings}"
    )


WORKERS = {"eqna": run_eqna, "mace": run_mace, "export": run_export, "exported": run_exported}


def case_spec(args, case: str) -> dict:
    """What a worker needs for ``case`` (``system-dtype``), from the command line."""
    system, dtype = case.split("-")
    return {
        "system": system,
        "dtype": dtype,
        "steps": args.steps or SYSTEMS[system],
        "warmup": args.warmup,
        "repeats": args.repeats,
        "model": args.model,
        "channels": args.channels,
        "config": args.config,
        "threads": args.threads,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cases = [f"{s}-{d}" for s in SYSTEMS for d in DTYPES]
    parser.add_argument("--cases", nargs="+", default=cases, choices=cases)
    parser.add_argument("--steps", type=int, help="MD steps per timed block (acac 50, si512 5)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed MD steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks; the best counts")
    parser.add_argument("--model", help="a model.pt (or zoo name) instead of the random model")
    parser.add_argument("--channels", type=int, help="num_channels of the random model")
    parser.add_argument(
        "--config",
        default="zoo/equivariant.yaml",
        help="YAML whose model section is the random model's architecture",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--mace", metavar="VENV", help="also time MACE small in VENV/bin/python")
    parser.add_argument("--json", metavar="PATH", help="also write every case's results here")
    parser.add_argument("--export", choices=("aoti", "program"),
                        help="also time the model exported as KIND (eqna-export)")  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["engine"]](spec)))
        return
    mace_python = str(Path(args.mace) / "bin" / "python") if args.mace else None
    if mace_python and not Path(mace_python).is_file():
        parser.error(f"--mace {args.mace}: no bin/python there")
    exported = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.export:
            for dtype in sorted({case.split("-")[1] for case in args.cases}):
                spec = {**case_spec(args, f"acac-{dtype}"), "engine": "export",
                        "kind": args.export, "path": str(Path(tmp) / f"{dtype}.pt2")}  # fmt: skip
                seconds = spawn(spec)["seconds"]
                print(f"exported the {dtype} model ({args.export}) in {seconds:.0f} s", flush=True)
                exported[dtype] = spec["path"]
        run_cases(args, mace_python, exported)


def run_cases(args, mace_python: str | None, exported: dict) -> None:
    print(table_head(bool(mace_python), args.export))
    records = []
    for case in args.cases:
        records.append({"case": case, **measure(case_spec(args, case), mace_python, exported)})
        print(table_row(records[-1]), flush=True)
        if args.json:
            summary = {"mace_small": MACE_SMALL if mace_python else None, "cases": records}
            Path(args.json).write_text(json.dumps(summary, indent=1))
    print(f"\n{note(args, records[-1]['mace']['params'] if mace_python else None)}")


if __name__ == "__main__":
    main()
