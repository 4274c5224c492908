"""``dnnfast.load``: the top of the model-file layers, dispatching on the header's kind.

Layers, each importing only those below it (tests/test_import_graph.py checks it):

- ``_model_files`` (this module): ``load``, which knows every kind of model file;
- the codecs beside their classes: ``_network_file`` (imported by ``network``: its
  ``save`` and a fit's checkpoints) and ``_estimators/_file`` (imported by the
  estimators' ``save``); they are handed their classes, never import them;
- ``_archive``: the archive reader and writer, the checked header fields and the
  value encoding; it imports no model.

The format is documented in ``docs/model_files.md``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ._archive import read_model
from ._estimators._file import estimator_codec
from ._network_file import network_codec
from .network import Network

if TYPE_CHECKING:
    from ._estimators._classifier import MLPClassifier
    from ._estimators._regressor import MLPRegressor
    from ._types import PathLike


def _estimator_class(kind):
    # Imported on first use: the estimators import scikit-learn's base classes when installed.
    if kind == "MLPClassifier":
        from ._estimators._classifier import MLPClassifier

        return MLPClassifier
    from ._estimators._regressor import MLPRegressor

    return MLPRegressor


_CODECS = {"Network": network_codec(Network),
           "MLPClassifier": estimator_codec(_estimator_class), "MLPRegressor": estimator_codec(_estimator_class)}


def load(path: PathLike) -> Network | MLPClassifier | MLPRegressor:
    """Read a model file written by ``save``; returns a Network, MLPClassifier or MLPRegressor.

    Parameters
    ----------
    path : str, bytes or os.PathLike

    Raises
    ------
    TypeError
        ``path`` is not a str, bytes or os.PathLike.
    FileNotFoundError
        There is no file at ``path``.
    ValueError
        ``path`` is not a regular file (a directory, a device, a FIFO), or the
        file is not a dnnfast model file, is damaged, forged, or of a newer
        format version than this dnnfast reads (the message says which), or the
        model it holds needs more memory than is available.
    MemoryError
        Memory ran out while reading all the same (the message names ``path``).
    """
    return read_model(path, _CODECS)
