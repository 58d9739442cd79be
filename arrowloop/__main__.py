"""``python -m arrowloop``: the command line (see :mod:`arrowloop.cli`)."""

from __future__ import annotations

import sys

from arrowloop.cli import main

if __name__ == "__main__":
    sys.exit(main())
