"""Type aliases of the public API's annotations (read by type checkers only:
the modules import this under ``typing.TYPE_CHECKING``)."""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Protocol, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

#: An activation: a name, or (name, {"alpha": value}).
Activation = Union[str, Tuple[str, Mapping[str, float]]]
#: A file name (str, bytes or os.PathLike, as open() takes).
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: A float32 or float64 array.
FloatArray = NDArray[np.floating[Any]]
#: A number, or a callable epoch -> learning rate.
LearningRate = Union[float, Callable[[int], float]]
#: What the estimators' ``random_state`` takes.
Seed = Union[int, np.random.RandomState, None]


class SparseMatrix(Protocol):
    """A SciPy sparse matrix or array, as ``_validation.is_sparse`` tells one (its ``nnz`` and ``toarray``)."""

    @property
    def nnz(self) -> int: ...

    def toarray(self) -> Any: ...


__all__ = ["Activation", "ArrayLike", "DTypeLike", "FloatArray", "LearningRate", "NDArray", "PathLike", "Seed",
           "Sequence", "SparseMatrix"]
