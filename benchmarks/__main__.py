"""``python -m zoo.benchmarks``: the same as ``zoo-bench``."""
import sys

from zoo.benchmarks.cli import main

sys.exit(main())
