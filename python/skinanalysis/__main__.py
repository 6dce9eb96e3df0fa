"""``python -m skinanalysis``: the command line (see skinanalysis.cli)."""

import sys

from .cli import main

sys.exit(main())
