"""``python -m snnqat``: the command-line interface (see :mod:`snnqat.cli`)."""

import sys

from snnqat.cli import main

if __name__ == "__main__":
    sys.exit(main())
