import sys

from eqna.models.zoo import main

sys.exit(main())
