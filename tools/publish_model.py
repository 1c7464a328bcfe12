"""Publish a trained run as a pretrained zoo model: zoo/<name>.pt plus its card zoo/<name>.md.

    python tools/publish_model.py runs/acac_na acac-equivariant-na \\
        --data "acetylacetone 300 K, ../shared/data/molecules/acac_train_300K.xyz" \\
        --reference "DFT (BOTNet data set)" --licence MIT \\
        --command "python -m eqna.train configs/acac.yaml ..."

The test set is the run's own (its config.yaml's ``data.test`` or its seeded split of
``data.train``), evaluated here with ``eqna.evaluate.evaluation.evaluate_dataset``; the first
``--check-frames`` test frames and the metrics on them are stored for the shipped tests to
reproduce. Run from the repository root (data paths in configs are relative to it).
"""

import argparse
import json
import os
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
MAX_MEGABYTES = 5.0


def test_set(run: Path, spec):
    """The run's test data set (validation set if it had none), rebuilt from its config."""
    from eqna.data.prepare import prepare_data
    from eqna.train.config import config_from_dict

    config = config_from_dict(yaml.safe_load((run / "config.yaml").read_text()))
    data = prepare_data(
        config.data, spec.cutoff, list(spec.elements), max_num_neighbors=spec.max_num_neighbors
    )
    if data.test is not None:
        return data.test, config.data.test or config.data.train
    return data.valid, config.data.valid or config.data.train


def _metrics_on(model, dataset):
    from eqna.evaluate.evaluation import evaluate_dataset

    metrics, _ = evaluate_dataset(model, dataset, batch_size=16)
    return {k: float(v) for k, v in metrics.items()}


def card_markdown(name: str, payload: dict, card: dict, params: int, megabytes: float) -> str:
    """The model card text."""
    from ase.data import chemical_symbols

    hp, m = payload["hparams"], card["test_metrics"]
    rows = [f"| {k} | {v:.3f} |" for k, v in m.items()]
    return "\n".join(
        [
            f"# {name}",
            "",
            card["description"],
            "",
            "| | |",
            "|---|---|",
            f"| family | {payload['family']} |",
            f"| elements | {' '.join(chemical_symbols[z] for z in hp['elements'])} |",
            f"| cutoff r_max | {hp['r_max']} Å |",
            f"| parameters | {params:,} ({megabytes:.2f} MB, {payload['dtype']}) |",
            f"| units | {', '.join(f'{k}: {v}' for k, v in payload['units'].items())} |",
            f"| training data | {card['training_data']} |",
            f"| reference method | {card['reference_method']} |",
            f"| data licence | {card['licence']} |",
            f"| training wall time | {card['train_minutes']:.1f} min ({card['epochs']} epochs) |",
            f"| neural atoms kept (K_eff) | {card.get('k_eff', '–')} |",
            "",
            "Trained with:",
            "",
            "```bash",
            card["train_command"],
            "```",
            "",
            f"Test metrics on {card['test_data']} ({card['test_frames']} frames), "
            "measured by `eqna.evaluate.evaluation.evaluate_dataset` (what `eqna-evaluate` "
            "prints; meV units):",
            "",
            "| metric | value |",
            "|---|---:|",
            *rows,
            "",
            f'Use: `EqnaCalculator("{name}")`; MD check: `eqna-md {name} STRUCTURE`.',
            "",
            *([f"Notes: {card['notes']}", ""] if card.get("notes") else []),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    from eqna.models.io import load_model
    from eqna.nn.neural_atoms import k_eff_summary

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a training output folder (model.pt, config.yaml)")
    parser.add_argument("name", help="zoo name, e.g. acac-equivariant-na")
    parser.add_argument("--description", required=True)
    parser.add_argument("--data", required=True, help="training data: what and where")
    parser.add_argument("--reference", required=True, help="reference method of the labels")
    parser.add_argument("--licence", required=True)
    parser.add_argument("--command", required=True, help="the command that trained the run")
    parser.add_argument("--notes", default="", help="free text for the card (machine, caveats)")
    parser.add_argument("--check-frames", type=int, default=20)
    args = parser.parse_args(argv)

    payload = torch.load(args.run / "model.pt", map_location="cpu", weights_only=True)
    model, _ = load_model(args.run / "model.pt")
    dataset, source = test_set(args.run, model.graph_spec)
    check = torch.utils.data.Subset(dataset, range(min(args.check_frames, len(dataset))))
    card = {
        "description": args.description,
        "training_data": args.data,
        "reference_method": args.reference,
        "licence": args.licence,
        "train_command": args.command,
        "notes": args.notes,
        "train_minutes": payload["extra"]["train_seconds"] / 60,
        "epochs": payload["extra"]["epochs"],
        "test_data": source,
        "test_frames": len(dataset),
        "test_metrics": _metrics_on(model, dataset),
        "check": {
            "data": source,
            "frames": dataset.frame_ids[: len(check)],
            "metrics": _metrics_on(model, check),
        },
        **k_eff_summary(model),
    }
    payload["extra"] = {**payload["extra"], "card": card}
    target = REPO / "eqna" / "zoo" / f"{args.name}.pt"
    tmp = target.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    megabytes = tmp.stat().st_size / 1e6
    if megabytes > MAX_MEGABYTES:
        tmp.unlink()
        raise SystemExit(f"{args.name}: {megabytes:.1f} MB exceeds the zoo limit {MAX_MEGABYTES}")
    params = sum(v.numel() for v in payload["state_dict"].values())
    card_text = card_markdown(args.name, payload, card, params, megabytes)
    os.replace(tmp, target)
    target.with_suffix(".md").write_text(card_text)
    print(card_text)
    print(json.dumps(card["check"]["metrics"], indent=2))


if __name__ == "__main__":
    main()
