"""`make bench`: what SSMax costs in speed and memory; the tables are built by `ssmax.bench`."""

import sys

from ssmax.bench import main

if __name__ == "__main__":
    sys.exit(main())
