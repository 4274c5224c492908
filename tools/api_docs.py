"""Build the API reference (HTML, from the numpydoc docstrings) with pdoc.

    pip install pdoc onnx scipy && python tools/api_docs.py [OUTDIR]     (default: docs/api)

dnnfast must be importable (installed, or PYTHONPATH=python after a dev
build). Every warning is an error: a name in ``__all__`` that does not
resolve, or a docstring pdoc cannot read, fails the build. The annotations
name onnx's and SciPy's types (``to_onnx``'s result, sparse X), which pdoc
resolves by importing them: without those, the build stops with that said.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import warnings


def main(argv: list[str]) -> int:
    out = argv[1] if len(argv) > 1 else os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                     "docs", "api")
    missing = [m for m in ("pdoc", "onnx", "scipy") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"api_docs.py: needs {', '.join(missing)} (the annotations name onnx's and SciPy's types): "
              f"pip install {' '.join(missing)}", file=sys.stderr)
        return 2
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
    # dnnfast documents what its __all__ names (datasets among them); distributed is imported by name.
    pdoc.pdoc("dnnfast", "dnnfast.distributed", output_directory=Path(out))
    print(f"API reference: {os.path.join(out, 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
