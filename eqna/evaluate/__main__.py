import sys

from eqna.evaluate.cli import main

sys.exit(main())
