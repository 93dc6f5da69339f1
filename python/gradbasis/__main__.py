"""``python -m gradbasis`` is the ``gradbasis`` command."""

import sys

from .cli import main

sys.exit(main())
