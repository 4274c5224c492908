"""dnnfast: fast fully-connected neural networks on the CPU.

A C++ core (hand-written GEMM, fused kernels, OpenMP) under a NumPy-checked
Python API. ``dnnfast.reference`` holds the same computation in plain NumPy.
"""
from . import _core
from ._core import get_num_threads
from ._guards import NonFiniteError, NonFiniteWarning
from ._registry import activation_names, loss_names
from .batching import batch_indices
from .network import History, Network
from ._validation import check_thread_count
from . import reference


def set_num_threads(n):
    """Threads the kernels use from now on, in every thread of the process.

    ``n`` is a positive integer, or 0 to follow ``OMP_NUM_THREADS`` (OpenMP's
    default) again. Results do not depend on it (see README, "Threads")."""
    _core.set_num_threads(check_thread_count(n, "n"))

__version__ = _core.__version__

__all__ = [
    "Network", "History", "MLPClassifier", "MLPRegressor", "load", "batch_indices", "reference",
    "activation_names", "loss_names", "get_num_threads", "set_num_threads", "NonFiniteError",
    "NonFiniteWarning", "__version__",
]


def __getattr__(name):
    # The scikit-learn-compatible estimators import scikit-learn's base classes
    # when it is installed; loading them on first use keeps `import dnnfast`
    # fast for everyone else.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    if name == "load":  # the model-file reader (zipfile, json) also loads on first use
        from ._model_files import load

        return load
    raise AttributeError(f"module 'dnnfast' has no attribute {name!r}")
