"""``python -m ecmm.cli`` runs the ``ecmm`` command."""

import sys

from ecmm.cli import main

sys.exit(main())
