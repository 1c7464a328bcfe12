"""``eqna-train CONFIG [dotted.key=value ...] [-o OUT]``: train a model from a YAML config.

examples:
  eqna-train equivariant_na                       # a zoo architecture, by name
  eqna-train my.yaml training.lr=1e-3 -o runs/a   # a config file, with an override
  eqna-train my.yaml 'model.neural_atoms={pooling: invariant}'
  eqna-train --list-keys                          # every config key: type, default, meaning

CONFIG is a YAML file, or the name of a zoo architecture (``eqna-zoo list``). A config may
start from another with ``base: other.yaml`` and state only its differences. Overrides are
parsed as YAML. Everything lands in OUT (default ``runs/<config name>``): config.yaml,
logs/metrics.csv, checkpoints/, model.pt and the test-set table.
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
    from eqna.train.config import ConfigError, load_config
    from eqna.train.describe import describe_keys

    if args.list_keys:
        print(describe_keys())
        return 0
    if args.config is None:
        parser().error("the following arguments are required: config")
    try:
        config = load_config(config_path(args.config), args.overrides)
    except ConfigError as err:
        return user_error(ValueError(f"invalid config\n{err}"), args.debug)
    except FileNotFoundError as err:
        return user_error(err, args.debug)
    out = Path(args.out) if args.out else Path("runs") / config.name
    from eqna.train.run import SetupError, train  # heavy imports once the config is valid

    try:
        train(config, out)
    except (DataError, UnknownElementError, SetupError) as err:
        return user_error(err, args.debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
