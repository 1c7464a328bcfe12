"""Publish a trained run as a pretrained zoo model: zoo/<name>.pt plus its card zoo/<name>.md.

    python tools/publish_model.py runs/acac_na acac-equivariant-na \\
        --data "acetylacetone 300 K, ../shared/data/molecules/acac_train_300K.xyz" \\
        --reference "DFT (BOTNet data set)" --licence MIT \\
        --command "python -m eqna.train configs/acac.yaml ..."

A committee folder (``eqna-train CONFIG --committee N -o runs/c``: ``committee.json``) is
published as one entry: zoo/<name>/member_k.pt (each with its own card and check slice),
zoo/<name>/committee.json and the card zoo/<name>.md, whose test metrics are those of the
members' mean prediction; ``EqnaCalculator("<name>")`` is then the committee.

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


def member_payload(run: Path, card_fields: dict, check_frames: int) -> tuple[dict, dict]:
    """(model file payload with its card, parity arrays on its test set) of one run."""
    from eqna.models.io import load_model
    from eqna.nn.neural_atoms import k_eff_summary

    payload = torch.load(run / "model.pt", map_location="cpu", weights_only=True)
    model, _ = load_model(run / "model.pt")
    dataset, source = test_set(run, model.graph_spec)
    check = torch.utils.data.Subset(dataset, range(min(check_frames, len(dataset))))
    metrics, parity = _evaluate(model, dataset)
    card = {
        **card_fields,
        "train_minutes": payload["extra"]["train_seconds"] / 60,
        "epochs": payload["extra"]["epochs"],
        "test_data": source,
        "test_frames": len(dataset),
        "test_metrics": metrics,
        "check": {
            "data": source,
            "frames": dataset.frame_ids[: len(check)],
            "metrics": _metrics_on(model, check),
        },
        **k_eff_summary(model),
    }
    payload["extra"] = {**payload["extra"], "card": card}
    return payload, parity


def _evaluate(model, dataset):
    from eqna.evaluate.evaluation import evaluate_dataset

    metrics, parity = evaluate_dataset(model, dataset, batch_size=16)
    return {k: float(v) for k, v in metrics.items()}, parity


def mean_metrics(parities: list[dict]) -> dict:
    """MAE and RMSE (meV units) of the members' mean prediction, from their parity arrays."""
    import numpy as np

    out = {}
    for quantity, (reference, _) in parities[0].items():
        mean = np.mean([p[quantity][1] for p in parities], axis=0)
        error = 1000.0 * (mean - reference)
        out[f"{quantity}_mae"] = float(np.abs(error).mean())
        out[f"{quantity}_rmse"] = float(np.sqrt((error**2).mean()))
    return out


def save_checked(payload: dict, target: Path) -> float:
    """Write ``payload`` to ``target`` atomically; returns its size in MB."""
    tmp = target.with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    megabytes = tmp.stat().st_size / 1e6
    if megabytes > MAX_MEGABYTES:
        tmp.unlink()
        raise SystemExit(f"{target}: {megabytes:.1f} MB exceeds the zoo limit {MAX_MEGABYTES}")
    os.replace(tmp, target)
    return megabytes


def publish_committee(args, card_fields: dict) -> None:
    """zoo/<name>/member_k.pt + committee.json + zoo/<name>.md from a committee folder."""
    from eqna.models.committee import committee_members, read_manifest

    members = [Path(p).parent for p in committee_members(args.run)]
    seeds = [m.get("seed") for m in read_manifest(args.run)["members"] if m.get("done", True)]
    folder = REPO / "eqna" / "zoo" / args.name
    folder.mkdir(exist_ok=True)
    entries, parities, payloads, megabytes = [], [], [], 0.0
    for k, run in enumerate(members):
        payload, parity = member_payload(run, card_fields, args.check_frames)
        megabytes += save_checked(payload, folder / f"member_{k}.pt")
        entries.append({"model": f"member_{k}.pt", "seed": seeds[k], "done": True})
        parities.append(parity)
        payloads.append(payload)
    cards = [p["extra"]["card"] for p in payloads]
    card = {
        **card_fields,
        "members": len(members),
        "train_minutes": sum(c["train_minutes"] for c in cards),
        "epochs": f"{len(cards)} members: " + "/".join(str(c["epochs"]) for c in cards),
        "test_data": cards[0]["test_data"],
        "test_frames": cards[0]["test_frames"],
        "test_metrics": mean_metrics(parities),
        "member_test_metrics": [c["test_metrics"] for c in cards],
        "check": {**cards[0]["check"], "members": [c["check"]["metrics"] for c in cards]},
    }
    from eqna.evaluate.predictions import write_atomically

    manifest = json.dumps({"members": entries, "card": card}, indent=1) + "\n"
    write_atomically(folder / "committee.json", lambda part: part.write_text(manifest))
    params = sum(v.numel() for p in payloads for v in p["state_dict"].values())
    text = card_markdown(args.name, payloads[0], card, params, megabytes)
    members_table = ["", "Members (each evaluated alone on the same test set):", "",
                     "| member | seed | epochs | forces MAE (meV/Å) | energy MAE (meV/atom) |",
                     "|---:|---:|---:|---:|---:|"]  # fmt: skip
    for k, c in enumerate(cards):
        m = c["test_metrics"]
        members_table.append(
            f"| {k} | {seeds[k]} | {c['epochs']} | {m.get('forces_mae', float('nan')):.2f} "
            f"| {m.get('energy_per_atom_mae', float('nan')):.3f} |"
        )
    text += "\n".join(members_table) + "\n"
    (REPO / "eqna" / "zoo" / f"{args.name}.md").write_text(text)
    print(text)


def main(argv: list[str] | None = None) -> None:
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
    card_fields = {
        "description": args.description,
        "training_data": args.data,
        "reference_method": args.reference,
        "licence": args.licence,
        "train_command": args.command,
        "notes": args.notes,
    }
    if (args.run / "committee.json").is_file():
        publish_committee(args, card_fields)
        return
    payload, _ = member_payload(args.run, card_fields, args.check_frames)
    target = REPO / "eqna" / "zoo" / f"{args.name}.pt"
    megabytes = save_checked(payload, target)
    card = payload["extra"]["card"]
    params = sum(v.numel() for v in payload["state_dict"].values())
    target.with_suffix(".md").write_text(card_markdown(args.name, payload, card, params, megabytes))
    print(target.with_suffix(".md").read_text())
    print(json.dumps(card["check"]["metrics"], indent=2))


if __name__ == "__main__":
    main()
