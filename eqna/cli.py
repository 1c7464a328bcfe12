"""What every eqna command line shares: ``--version``, logging, and the error exit.

User errors (bad config, data, model file or argument) print one ``error:`` line and exit 2;
``--debug`` shows the traceback instead. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

import eqna


def add_version(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--version`` (eqna, torch and e3nn versions) and ``--debug`` on ``parser``."""
    parser.add_argument("--version", action="version", version=version_line())
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return parser


def command_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """A command's parser: its module docstring kept as written, ``--version`` and ``--debug``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return add_version(parser)


def version_line() -> str:
    import e3nn
    import torch

    return f"eqna {eqna.__version__} (torch {torch.__version__}, e3nn {e3nn.__version__})"


def configure_logging(verbose: bool = True) -> None:
    """eqna's INFO lines on stderr; upstream noise that tells a user nothing silenced."""
    logger = logging.getLogger("eqna")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if verbose else logging.WARNING)
    logger.propagate = False
    # Lightning's advert for its hosted logger, printed at every Trainer start
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropLitLoggerTip())
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_DropLitLoggerTip())
    # logged at every checkpoint: eqna saves full training state on purpose (resume needs it)
    for name in ("pytorch_lightning", "lightning.pytorch"):
        connector = f"{name}.trainer.connectors.checkpoint_connector"
        logging.getLogger(connector).addFilter(_DropWeightsOnlyNote())
    # torch's pytree deprecation, raised inside upstream code we do not control
    warnings.filterwarnings("ignore", message=r".*_register_pytree_node.*", category=Warning)
    warnings.filterwarnings("ignore", message=r".*register_pytree_node.*deprecated.*")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated")


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (a redirect or a test's capture), not to the
    stream that was current when logging was configured."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _DropLitLoggerTip(logging.Filter):
    """Lightning's adverts for its hosted services (litlogger, litmodels)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage().lower()
        return "litlogger" not in message and "litmodels" not in message


class _DropWeightsOnlyNote(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "`weights_only` was not set" not in record.getMessage()


def user_error(err: BaseException, debug: bool = False) -> int:
    """Print ``err`` as one line (or its traceback with ``--debug``); returns exit code 2."""
    if debug:
        raise err
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    print(f"error: {message}", file=sys.stderr)
    return 2
