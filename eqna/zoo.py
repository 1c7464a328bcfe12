"""The model zoo: architectures (``zoo/*.yaml``) and pretrained models (``zoo/<name>.pt``).

    python -m eqna.zoo list          # pretrained models: elements, cutoff, size, test metrics
    python -m eqna.zoo show NAME     # a pretrained model's card (zoo/<name>.md)

A pretrained model is an ordinary eqna model file whose ``extra["card"]`` holds what its model
card states (written by ``tools/publish_model.py``): training data and its reference method,
licence, the command that trained it, wall time, the test metrics and a small ``check`` slice
of the test data with the metrics measured on it, which the shipped tests reproduce. Load one
by name with ``EqnaCalculator("<name>")``; ``$EQNA_ZOO`` adds a directory to search.
"""

import argparse
import sys
from pathlib import Path

import torch

from eqna.calculators.ase import zoo_dirs

__all__ = ["architectures", "main", "model_card", "pretrained_models"]


def pretrained_models() -> list[dict]:
    """Every ``<name>.pt`` in the zoo directories: name, path, size and its card metadata."""
    found, seen = [], set()
    for directory in zoo_dirs():
        for path in sorted(directory.glob("*.pt")):
            if path.stem in seen:
                continue  # an earlier directory ($EQNA_ZOO) shadows the repository's zoo
            seen.add(path.stem)
            payload = torch.load(path, map_location="cpu", weights_only=True)
            hparams = payload["hparams"]
            found.append(
                {
                    "name": path.stem,
                    "path": path,
                    "family": payload["family"],
                    "elements": list(hparams["elements"]),
                    "r_max": float(hparams["r_max"]),
                    "params": sum(v.numel() for v in payload["state_dict"].values()),
                    "megabytes": path.stat().st_size / 1e6,
                    "card": payload.get("extra", {}).get("card", {}),
                }
            )
    return found


def architectures() -> list[Path]:
    """The zoo's YAML configs (trainable variants) in every zoo directory."""
    return sorted(p for d in zoo_dirs() for p in d.glob("*.yaml"))


def model_card(name: str) -> Path:
    """Path of the markdown card of pretrained model ``name``."""
    for model in pretrained_models():
        if model["name"] == name:
            card = model["path"].with_suffix(".md")
            if card.is_file():
                return card
            raise FileNotFoundError(f"{model['path']}: no model card {card.name} beside it")
    known = ", ".join(m["name"] for m in pretrained_models()) or "none"
    raise FileNotFoundError(f"no pretrained model {name!r} in the zoo (known: {known})")


def _symbols(numbers: list[int]) -> str:
    from ase.data import chemical_symbols

    return " ".join(chemical_symbols[z] for z in numbers)


def format_list(models: list[dict]) -> str:
    """Markdown table of pretrained models."""
    lines = [
        "| name | family | elements | r_max (Å) | params | size (MB) | test energy "
        "(meV/atom) | test forces (meV/Å) | test data |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for m in models:
        metrics = m["card"].get("test_metrics", {})
        energy, forces = metrics.get("energy_per_atom_mae"), metrics.get("forces_mae")
        lines.append(
            f"| {m['name']} | {m['family']} | {_symbols(m['elements'])} | {m['r_max']:g} "
            f"| {m['params']:,} | {m['megabytes']:.2f} "
            f"| {'–' if energy is None else f'{energy:.2f}'} "
            f"| {'–' if forces is None else f'{forces:.1f}'} "
            f"| {m['card'].get('test_data', '–')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eqna.zoo", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="pretrained models and trainable architectures")
    show = commands.add_parser("show", help="print a pretrained model's card")
    show.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "show":
        try:
            print(model_card(args.name).read_text())
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        return 0
    print("Pretrained models (EqnaCalculator(name), python -m eqna.zoo show NAME):\n")
    print(format_list(pretrained_models()))
    print("\nArchitectures (python -m eqna.train zoo/NAME.yaml):", end=" ")
    print(", ".join(p.stem for p in architectures()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
