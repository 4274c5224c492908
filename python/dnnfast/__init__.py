"""dnnfast: fast fully-connected neural networks on the CPU.

A C++ core (hand-written GEMM, fused kernels, OpenMP) under a NumPy-checked
Python API. ``dnnfast.reference`` holds the same computation in plain NumPy.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _core
from ._core import get_num_threads
from ._guards import NonFiniteError, NonFiniteWarning
from ._registry import activation_names, loss_names
from .batching import batch_indices
from .network import History, Network
from ._validation import check_thread_count as _check_thread_count
from . import reference

if TYPE_CHECKING:  # what __getattr__ loads on first use, as type checkers should see it
    import onnx

    from . import datasets
    from ._model_files import load
    from ._types import PathLike
    from .estimators import MLPClassifier, MLPRegressor


def set_num_threads(n: int) -> None:
    """Threads the kernels use from now on, in every thread of the process.

    Results do not depend on it (see README, "Threads").

    Parameters
    ----------
    n : int
        A thread count in [1, 65536], or 0 to follow ``OMP_NUM_THREADS``
        (OpenMP's default) again.
    """
    _core.set_num_threads(_check_thread_count(n, "n"))



def to_onnx(model: Network | MLPClassifier | MLPRegressor, path: PathLike | None = None, *,
            opset: int | None = None) -> onnx.ModelProto:
    """Export a ``Network``, ``MLPClassifier`` or ``MLPRegressor`` to ONNX.

    onnxruntime runs the graph to dnnfast's round-off, in the model's dtype
    (float32 or float64): one ``Gemm`` per layer, then the layer's activation.

    Parameters
    ----------
    model : Network, MLPClassifier or MLPRegressor
        A network, or a fitted estimator.
    path : str, bytes or os.PathLike, optional
        Also write the model there (atomically: a failure leaves any file
        there as it was).
    opset : int, optional
        The ai.onnx opset, 13 or later; by default 21 (or onnx's latest if
        that is older).

    Returns
    -------
    onnx.ModelProto
        Input ``X`` (n, n_features) in the model's dtype. Outputs, as skl2onnx
        gives them for scikit-learn's MLPs: a ``Network``'s ``output``
        (n, m_y), as ``predict``; a classifier's ``label`` (n,) of int64 or
        string classes, or (n, n_labels) of int64 0/1 when multi-label, as
        ``predict``, and ``probabilities`` (n, n_classes), as
        ``predict_proba``; a regressor's ``variable`` (n, n_outputs), as
        ``predict`` (2-D also for one output).

    Raises
    ------
    ImportError
        Without the ``onnx`` package: ``pip install 'dnnfast[onnx]'``.
    ValueError
        With ``path``, a model of 2 GiB or more, which protobuf cannot
        serialize as one message (the message names ``path``; the returned
        model can be saved with ``onnx.save_model(model, path,
        save_as_external_data=True)``).

    Notes
    -----
    With skl2onnx installed, ``skl2onnx.to_onnx`` also converts the
    estimators, inside a scikit-learn ``Pipeline`` too (they are registered
    with it once both are imported).
    """
    if not callable(getattr(type(model), "to_onnx", None)) or not hasattr(type(model), "_onnx_spec"):
        raise TypeError(f"model: expected a dnnfast Network, MLPClassifier or MLPRegressor, "
                        f"got {type(model).__name__}")
    return model.to_onnx(path, opset=opset)


__version__ = _core.__version__

__all__ = [
    "Network", "History", "MLPClassifier", "MLPRegressor", "load", "batch_indices", "reference",
    "activation_names", "loss_names", "get_num_threads", "set_num_threads", "NonFiniteError",
    "NonFiniteWarning", "to_onnx", "datasets", "__version__",
]


def __getattr__(name: str) -> Any:
    # The scikit-learn-compatible estimators import scikit-learn's base classes
    # when it is installed; loading them on first use keeps `import dnnfast`
    # fast for everyone else.
    if name in ("MLPClassifier", "MLPRegressor"):
        from . import estimators

        return getattr(estimators, name)
    if name == "load":  # the model-file reader (zipfile, json) also loads on first use
        from ._model_files import load

        return load
    if name == "datasets":  # README names it beside reference and distributed: dnnfast.datasets.load_digits()
        import importlib  # (`from . import datasets` would ask this __getattr__ again)

        return importlib.import_module(".datasets", __name__)
    raise AttributeError(f"module 'dnnfast' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The public names, the lazily loaded ones too (MLPClassifier, MLPRegressor,
    # load, datasets), and the submodules already imported (network, batching,
    # distributed...), for completion; not this file's own helpers (Any,
    # TYPE_CHECKING, annotations).
    import types

    modules = {k for k, v in globals().items() if isinstance(v, types.ModuleType) and not k.startswith("_")}
    return sorted(set(__all__) | modules)
