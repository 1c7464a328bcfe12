import sys

from eqna.train.cli import main

sys.exit(main())
