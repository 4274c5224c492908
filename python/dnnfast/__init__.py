"""dnnfast: fast fully-connected neural networks on the CPU."""
from . import _core
from ._core import get_num_threads, set_num_threads

__version__ = _core.__version__
