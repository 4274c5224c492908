"""Build the API reference (HTML, from the numpydoc docstrings) with pdoc.

    pip install pdoc && python tools/api_docs.py [OUTDIR]     (default: docs/api)

dnnfast must be importable (installed, or PYTHONPATH=python after a dev
build). Every warning is an error: a name in ``__all__`` that does not
resolve, or a docstring pdoc cannot read, fails the build.
"""
from __future__ import annotations

import os
import sys
import warnings


def main(argv: list[str]) -> int:
    out = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                     "docs", "api")
    warnings.simplefilter("error")
    import dnnfast

    # The names dnnfast loads on first use (MLPClassifier, MLPRegressor, load)
    # are not in its __dict__ until then, and pdoc reads the __dict__.
    for name in dnnfast.__all__:
        setattr(dnnfast, name, getattr(dnnfast, name))
    import pdoc
    import pdoc.render
    from pathlib import Path

    pdoc.render.configure(docformat="numpy", footer_text=f"dnnfast {dnnfast.__version__}")
    # dnnfast documents what its __all__ names; distributed and datasets are imported by name.
    pdoc.pdoc("dnnfast", "dnnfast.distributed", "dnnfast.datasets", output_directory=Path(out))
    print(f"API reference: {os.path.join(out, 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
