"""``python -m eqna.train CONFIG [dotted.key=value ...] [-o OUT]``."""

import argparse
import sys
from pathlib import Path

from eqna.data.datasets import DataError
from eqna.data.graph import UnknownElementError
from eqna.train.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eqna.train", description="Train an eqna model from a YAML config."
    )
    parser.add_argument("config", help="YAML config, e.g. zoo/equivariant.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value, e.g. training.lr=1e-3")
    parser.add_argument("-o", "--out", help="output folder (default runs/<config name>)")
    args = parser.parse_intermixed_args(argv)
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as err:
        print(f"error: invalid config\n{err}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("runs") / config.name
    from eqna.train.run import train  # heavy imports only once the config is valid

    try:
        train(config, out)
    except (DataError, UnknownElementError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
