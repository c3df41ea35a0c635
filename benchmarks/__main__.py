"""``python -m benchmarks``: the same as ``zoo-bench``."""
import sys

from benchmarks.cli import main

sys.exit(main())
