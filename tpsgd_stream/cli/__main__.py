"""``python -m tpsgd_stream.cli``: the ``tpsgd-stream`` command."""

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
