"""``python -m benchmarks [SUITE ...]`` from the repository root: the same as
``python benchmarks/run.py``. The scripts here import each other as
top-level modules (each worker runs as a script), so this folder goes on
the path rather than being a package."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402

sys.argv[0] = "python -m benchmarks"  # argparse's usage line (else "__main__.py")
try:
    run.main()
except BrokenPipeError:  # `python -m benchmarks --list | head -1`: the reader left, as python -m dnnfast
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at the exit's flush
    sys.exit(141)
