"""``eqna-train CONFIG [dotted.key=value ...] [-o OUT]``: train a model from a YAML config.

examples:
  eqna-train equivariant_na                       # a zoo architecture, by name
  eqna-train my.yaml training.lr=1e-3 -o runs/a   # a config file, with an override
  eqna-train my.yaml 'model.neural_atoms={pooling: invariant}'
  eqna-train --list-keys                          # every config key: type, default, meaning
  eqna-train my.yaml -o runs/a --resume           # continue a killed or interrupted run
  eqna-train --export runs/a/checkpoints/last.ckpt -o model.pt   # any checkpoint -> model.pt
  eqna-train my.yaml -o runs/c --committee 4      # 4 seeds: runs/c/member_0..3, committee.json

CONFIG is a YAML file, or the name of a zoo architecture (``eqna-zoo list``). A config may
start from another with ``base: other.yaml`` and state only its differences. Overrides are
parsed as YAML. Everything lands in OUT (default ``runs/<config name>``): config.yaml,
logs/metrics.csv, checkpoints/, model.pt and the test-set table. OUT holds one run: a
non-empty OUT is refused unless --resume continues it or --overwrite replaces it.

exit codes: 0 done; 2 bad config, data or folder (nothing written); 1 training diverged
(nothing exported); 143 / 130 stopped by SIGTERM / Ctrl-C (resumable checkpoint and an
interrupted model.pt written).
"""

import argparse
import sys
from pathlib import Path

from eqna.cli import add_version, configure_logging, user_error
from eqna.data.datasets import DataError
from eqna.data.graph import UnknownElementError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="eqna-train",
        description="Train an eqna model from a YAML config.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_version(p)
    p.add_argument("config", nargs="?", help="YAML config, or a zoo architecture name")
    p.add_argument("overrides", nargs="*", help="dotted.key=value, e.g. training.lr=1e-3")
    p.add_argument("-o", "--out", help="output folder (default runs/<config name>)")
    p.add_argument("--list-keys", action="store_true", help="print every config key and exit")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT")
    p.add_argument("--overwrite", action="store_true", help="replace the run in OUT")
    p.add_argument(
        "--committee", type=int, metavar="N",
        help="train N members (training.seed + k) into OUT/member_k, listed in committee.json",
    )  # fmt: skip
    p.add_argument(
        "--bootstrap", action="store_true",
        help="with --committee: member k trains on a bootstrap resample of the training split "
        "(data.bootstrap_seed = training.seed + k)",
    )  # fmt: skip
    p.add_argument(
        "--export", metavar="CHECKPOINT", help="write a checkpoint as a model.pt (-o) and exit"
    )
    return p


def config_path(spec: str) -> Path:
    """A config file, else the zoo architecture of that name."""
    path = Path(spec)
    if path.exists() or "/" in spec or path.suffix in (".yaml", ".yml"):
        return path
    from eqna.models.zoo import architecture_path

    return architecture_path(spec)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    configure_logging()
    if args.list_keys:
        from eqna.train.describe import describe_keys

        print(describe_keys())
        return 0
    if args.export:
        return _export(args)
    if args.config is None:
        parser().error("the following arguments are required: config")
    from eqna.train.config import ConfigError, load_config

    try:
        config = load_config(config_path(args.config), args.overrides)
    except ConfigError as err:
        return user_error(ValueError(f"invalid config\n{err}"), args.debug)
    except FileNotFoundError as err:
        return user_error(err, args.debug)
    out = Path(args.out) if args.out else Path("runs") / config.name
    if args.bootstrap and args.committee is None:
        return user_error(ValueError("--bootstrap resamples committee members: add --committee N"))
    if args.committee is not None:
        if args.committee < 2:
            return user_error(ValueError(f"--committee needs >= 2 members, got {args.committee}"))
        seed = config.training.seed
        configs = [
            load_config(
                config_path(args.config),
                [*args.overrides, *_member_overrides(seed + k, args.bootstrap)],
            )
            for k in range(args.committee)
        ]
        return _train(configs, out, args)
    return _train(config, out, args)


def _member_overrides(seed: int, bootstrap: bool) -> list[str]:
    """A committee member's seed (and bootstrap resample)."""
    return [f"training.seed={seed}"] + ([f"data.bootstrap_seed={seed}"] if bootstrap else [])


def _train(config, out: Path, args) -> int:
    from eqna.train.committee import train_committee
    from eqna.train.lifecycle import EXIT_CODES, Interrupted  # heavy imports once it is valid
    from eqna.train.module import TrainingDiverged
    from eqna.train.run import ModelBuildError, SetupError, train
    from eqna.train.run_folder import RunFolderError

    try:
        if isinstance(config, list):  # a committee's members
            train_committee(config, out, resume=args.resume, overwrite=args.overwrite)
        else:
            train(config, out, resume=args.resume, overwrite=args.overwrite)
    except (DataError, UnknownElementError, SetupError, RunFolderError, ModelBuildError) as err:
        return user_error(err, args.debug)
    except TrainingDiverged as err:
        user_error(err, args.debug)
        return 1
    except Interrupted as err:
        print(
            f"interrupted ({err}): {out}/model.pt holds the best weights so far; continue with "
            f"eqna-train {args.config} {' '.join(args.overrides)} -o {out} --resume"
            f"{f' --committee {args.committee}' if args.committee else ''}".replace("  ", " "),
            file=sys.stderr,
        )
        return EXIT_CODES[err.signum]
    return 0


def _export(args) -> int:
    if not args.out:
        parser().error("--export needs -o MODEL.pt")
    from eqna.train.export import export_checkpoint

    try:
        _, info = export_checkpoint(Path(args.export), Path(args.out))
    except (FileNotFoundError, ValueError) as err:
        return user_error(err, args.debug)
    print(f"wrote {args.out} (epoch {info['epochs']} of {args.export})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
