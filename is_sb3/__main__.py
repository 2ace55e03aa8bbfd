"""``python -m is_sb3`` is the ``is-rl`` command line."""

import sys

from is_sb3.cli import main

sys.exit(main())
