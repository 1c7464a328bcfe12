import sys

from eqna.export.cli import main

sys.exit(main())
