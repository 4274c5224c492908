"""dnnfast: fast fully-connected neural networks on the CPU.

A C++ core (hand-written GEMM, fused kernels, OpenMP) under a NumPy-checked
Python API. ``dnnfast.reference`` holds the same computation in plain NumPy.
"""
from . import _core
from ._core import get_num_threads, set_num_threads
from ._registry import activation_names, loss_names
from .batching import batch_indices
from .network import History, Network
from . import reference

__version__ = _core.__version__

__all__ = [
    "Network", "History", "batch_indices", "reference", "activation_names", "loss_names",
    "get_num_threads", "set_num_threads", "__version__",
]
