"""`python -m workbench`: the command-line face of the workbench."""

import sys

from workbench.cli import main

sys.exit(main())
