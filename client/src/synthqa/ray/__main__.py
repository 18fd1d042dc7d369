"""`python -m synthqa.ray PATH_OR_URI... --target T --out DIR --num-shards N`: see cli.py."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
