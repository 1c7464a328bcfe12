"""Cost of the neural-atom layer against the number of atoms (periodic diamond Si).

For each supercell, times energy + forces (one forward and one backward pass, as in an MD step)
of the zoo backbone without neural atoms, with the equivariant_na layer using all K_max = 16
neural atoms, with 12 of its 16 gates closed (pruned to K_eff = 4), and with the reciprocal view
on; and the first neural-atom layer alone (forward + backward on the features it receives,
per atom: flat when the cost is linear in N). Prints a markdown table; overheads are relative
to the backbone.

    python tools/bench_neural_atoms.py                      # 64 ... 4096 atoms
    python tools/bench_neural_atoms.py --sizes 2 4 --threads 1
"""

import argparse
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
VARIANTS = ("backbone", "na", "na_pruned", "na_reciprocal")


def make_model(variant: str, dtype: torch.dtype):
    """Random model with the zoo/equivariant_na.yaml architecture (speed does not need training)."""
    from eqna.models.io import build_model
    from eqna.nn.neural_atoms import neural_atom_layers
    from eqna.train.config import load_architecture

    arch = load_architecture(REPO / "zoo" / "equivariant_na.yaml")
    arch.pop("family")
    if variant == "backbone":
        arch.pop("neural_atoms")
    elif variant == "na_reciprocal":
        arch["neural_atoms"]["reciprocal"] = True
    torch.manual_seed(0)
    fixed = {"elements": [14], "atomic_energies": [0.0], "avg_num_neighbors": 16.0}
    model = build_model("equivariant", {**fixed, **arch})
    if variant == "na_pruned":
        for layer in neural_atom_layers(model):
            with torch.no_grad():
                layer.gate_logits[4:] = -10.0  # g = 4.5e-5 < prune_epsilon
    return model.to(dtype).eval()


def silicon(repeat: int):
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * ((repeat,) * 3)
    atoms.rattle(0.05, seed=0)
    return atoms


def best_times(calls: dict, repeats: int) -> dict[str, float]:
    """Best wall time (s) of each zero-argument call; calls interleave in every round so that
    load drifting on the machine hits all variants alike."""
    for call in calls.values():
        call()  # warm-up
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def energy_forces(model, batch):
    return lambda: model(batch, compute_stress=False)["forces"].sum().item()


def layer_alone(model, batch):
    """Forward + backward of the first neural-atom layer on the features it receives."""
    from eqna.nn.neural_atoms import neural_atom_layers

    layer = neural_atom_layers(model)[0]
    seen = {}
    handle = layer.register_forward_hook(lambda m, args, out: seen.setdefault("h", args[0]))
    model(batch, compute_stress=False)
    handle.remove()
    h = seen["h"].detach().requires_grad_(True)

    def call():
        out = layer(h, batch)
        torch.autograd.grad(out.pow(2).sum(), h)

    return call


def main(argv: list[str] | None = None) -> None:
    from eqna.data.collate import collate, to_device

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[2, 4, 6, 8],
        help="cubic supercell repeats (8 atoms each): 2 -> 64 atoms, 8 -> 4096",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    models = {v: make_model(v, dtype) for v in VARIANTS}
    spec = models["backbone"].graph_spec
    print(
        "| atoms | backbone ms | + NA (K=16) ms | overhead | + NA pruned (K_eff=4) ms | overhead "
        "| + NA + reciprocal ms | overhead | layer alone K=16 µs/atom | K_eff=4 µs/atom |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        atoms = silicon(n)
        batch = to_device(collate([spec.graph(atoms)]), "cpu", dtype)
        calls = {v: energy_forces(m, batch) for v, m in models.items()}
        calls["layer"] = layer_alone(models["na"], batch)
        calls["layer_pruned"] = layer_alone(models["na_pruned"], batch)
        t = best_times(calls, args.repeats)
        base = t["backbone"]
        cells = [f"{1e3 * t[v]:.1f} | {100 * (t[v] / base - 1):+.0f} %" for v in VARIANTS[1:]]
        layer = [f"{1e6 * t[v] / len(atoms):.1f}" for v in ("layer", "layer_pruned")]
        row = " | ".join([str(len(atoms)), f"{1e3 * base:.1f}", *cells, *layer])
        print(f"| {row} |", flush=True)
    print(
        f"\nenergy + forces, {args.dtype}, torch threads {args.threads}, best of {args.repeats};"
        " architecture of zoo/equivariant_na.yaml, random weights."
    )


if __name__ == "__main__":
    main()
