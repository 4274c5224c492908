"""``python -m benchmarks [SUITE ...]`` from the repository root: the same as
``python benchmarks/run.py``. The scripts here import each other as
top-level modules (each worker runs as a script), so this folder goes on
the path rather than being a package."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402
from workloads import cli  # noqa: E402

sys.argv[0] = "python -m benchmarks"  # argparse's usage line (else "__main__.py")
cli(run.main, sys.argv[0])
