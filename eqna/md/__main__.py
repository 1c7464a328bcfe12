"""``python -m eqna.md``: the command-line entry point (see :mod:`eqna.md.cli`)."""

import sys

from eqna.md.cli import main

sys.exit(main())
