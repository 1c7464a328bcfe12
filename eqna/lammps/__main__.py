import sys

from eqna.lammps.script import main

sys.exit(main())
