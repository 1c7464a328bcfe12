"""The model zoo by name: architectures (``*.yaml``) and pretrained models (``<name>.pt``).

    eqna-zoo list          # pretrained models: elements, cutoff, size, test metrics
    eqna-zoo show NAME     # a pretrained model's card (<name>.md)

The zoo's files ship inside the package (``eqna/zoo/``), so a wheel installed anywhere finds
them; ``$EQNA_ZOO`` (one folder, or several separated by ``os.pathsep``) is searched first.

A pretrained model is an ordinary eqna model file whose ``extra["card"]`` holds what its model
card states (written by ``tools/publish_model.py``): training data and its reference method,
licence, the command that trained it, wall time, the test metrics and a small ``check`` slice
of the test data with the metrics measured on it, which the shipped tests reproduce. Load one
by name with ``EqnaCalculator("<name>")``; ``$EQNA_ZOO`` adds a directory to search.
"""

import argparse
import os
import sys
from importlib import resources
from pathlib import Path

from eqna.cli import add_version, user_error
from eqna.models.io import read_model_file

__all__ = [
    "architecture_path",
    "architectures",
    "main",
    "model_card",
    "pretrained_models",
    "resolve_model_path",
    "zoo_dirs",
]

ZOO_ENV = "EQNA_ZOO"


def zoo_dirs() -> list[Path]:
    """Folders searched for zoo names: each of ``$EQNA_ZOO`` (if set), then the shipped zoo."""
    extra = [p for p in os.environ.get(ZOO_ENV, "").split(os.pathsep) if p]
    return [Path(p).expanduser() for p in extra] + [Path(str(resources.files("eqna.zoo")))]


def resolve_model_path(model: str | os.PathLike) -> Path:
    """An existing file, else ``<dir>/<name>.pt`` or ``<dir>/<name>/model.pt`` in :func:`zoo_dirs`.

    Raises:
        FileNotFoundError: nothing matched; the message lists every path tried.
    """
    path = Path(model).expanduser()
    if path.is_file():
        return path
    tried = [path]
    for directory in zoo_dirs():
        for candidate in (directory / f"{model}.pt", directory / str(model) / "model.pt"):
            if candidate.is_file():
                return candidate
            tried.append(candidate)
    raise FileNotFoundError(
        f"model {str(model)!r} not found; looked for: {', '.join(map(str, tried))} "
        f"(set ${ZOO_ENV} to add a zoo directory; `eqna-zoo list` shows the shipped models)"
    )


def architecture_path(name: str) -> Path:
    """The zoo architecture config ``<name>.yaml`` (``name`` may end in ``.yaml``).

    Raises:
        FileNotFoundError: no zoo folder has it; the message lists the known names.
    """
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    for directory in zoo_dirs():
        if (directory / f"{stem}.yaml").is_file():
            return directory / f"{stem}.yaml"
    known = ", ".join(p.stem for p in architectures())
    raise FileNotFoundError(f"no zoo architecture {name!r} (known: {known})")


def pretrained_models() -> list[dict]:
    """Every ``<name>.pt`` and committee ``<name>/committee.json`` in the zoo directories:
    name, path, size and its card metadata (a committee's: of its members' mean)."""
    found, seen = [], set()
    for directory in zoo_dirs():
        for manifest in sorted(directory.glob("*/committee.json")):
            if manifest.parent.name not in seen:
                seen.add(manifest.parent.name)
                found.append(_committee_entry(manifest))
        for path in sorted(directory.glob("*.pt")):
            if path.stem in seen:
                continue  # an earlier directory ($EQNA_ZOO) shadows the repository's zoo
            seen.add(path.stem)
            payload = read_model_file(path)
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


def _committee_entry(manifest: Path) -> dict:
    """A zoo committee as :func:`pretrained_models` lists it."""
    import json

    folder, data = manifest.parent, json.loads(manifest.read_text())
    payloads = [read_model_file(folder / m["model"]) for m in data["members"]]
    hparams = payloads[0]["hparams"]
    return {
        "name": folder.name,
        "path": folder,
        "family": f"committee of {len(payloads)} {payloads[0]['family']}",
        "elements": list(hparams["elements"]),
        "r_max": float(hparams["r_max"]),
        "params": sum(v.numel() for p in payloads for v in p["state_dict"].values()),
        "megabytes": sum((folder / m["model"]).stat().st_size for m in data["members"]) / 1e6,
        "card": data.get("card", {}),
        "members": [folder / m["model"] for m in data["members"]],
    }


def architectures() -> list[Path]:
    """The zoo's YAML configs (trainable variants) in every zoo directory."""
    found = {}
    for path in (p for d in zoo_dirs() for p in sorted(d.glob("*.yaml"))):
        found.setdefault(path.stem, path)  # an earlier directory shadows the shipped zoo
    return sorted(found.values(), key=lambda p: p.stem)


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
    parser = argparse.ArgumentParser(prog="eqna-zoo", description=__doc__.split("\n")[0])
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="pretrained models and trainable architectures")
    show = commands.add_parser("show", help="print a pretrained model's card")
    show.add_argument("name")
    args = parser.parse_args(argv)
    try:
        if args.command == "show":
            print(model_card(args.name).read_text())
            return 0
        table = format_list(pretrained_models())
    except (FileNotFoundError, ValueError) as err:
        return user_error(err, args.debug)
    print("Pretrained models (EqnaCalculator(name), eqna-zoo show NAME):\n")
    print(table)
    print("\nArchitectures (eqna-train NAME, e.g. eqna-train equivariant_na):", end=" ")
    print(", ".join(p.stem for p in architectures()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
