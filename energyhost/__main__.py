import sys

from energyhost.cli import main

sys.exit(main())
