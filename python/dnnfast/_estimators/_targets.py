"""Class labels <-> network outputs: scikit-learn's ``LabelBinarizer`` when it
is installed, a NumPy stand-in with the same behaviour otherwise."""
from __future__ import annotations

import numpy as np

from ._compat import HAVE_SKLEARN


class _NumpyLabelBinarizer:
    """Binary -> one 0/1 column (1 = ``classes_[1]``), multi-class -> one-hot,
    multi-label indicator -> itself; ``inverse_transform`` thresholds at 0.5 or
    takes the arg-max."""

    def fit(self, y):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            if y.dtype.kind not in "biuf" or not np.all((y == 0) | (y == 1)):
                raise ValueError("Multi-output targets must be a 0/1 label indicator matrix "
                                 "(multi-label classification).")
            self.y_type_ = "multilabel-indicator"
            self.classes_ = np.arange(y.shape[1])
            return self
        y = y.ravel()
        if y.dtype.kind == "f" and np.any(y != np.round(y)):
            raise ValueError("Unknown label type: continuous. Maybe you are trying to fit a classifier, "
                             "which expects discrete classes on a regression target with continuous values.")
        self.classes_ = np.unique(y)
        self.y_type_ = "multiclass" if len(self.classes_) > 2 else "binary"
        return self

    def transform(self, y):
        y = np.asarray(y)
        if self.y_type_ == "multilabel-indicator":
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                raise ValueError("y has a different number of labels than at fit time")
            return y.astype(int)
        y = y.ravel()
        if self.y_type_ == "binary":
            if len(self.classes_) == 1:
                return np.zeros((len(y), 1), dtype=int)
            return (y == self.classes_[1]).astype(int).reshape(-1, 1)
        pos = np.searchsorted(self.classes_, y)
        pos = np.clip(pos, 0, len(self.classes_) - 1)
        out = np.zeros((len(y), len(self.classes_)), dtype=int)
        known = self.classes_[pos] == y
        out[np.arange(len(y))[known], pos[known]] = 1
        return out

    def inverse_transform(self, Y):
        Y = np.asarray(Y)
        if self.y_type_ == "multilabel-indicator":
            return (Y > 0.5).astype(int)
        if self.y_type_ == "multiclass":
            return self.classes_.take(Y.argmax(axis=1))
        Y = Y.ravel()
        if len(self.classes_) == 1:
            return np.repeat(self.classes_, len(Y))
        return self.classes_[(Y > 0.5).astype(int)]


if HAVE_SKLEARN:
    from sklearn.preprocessing import LabelBinarizer
    from sklearn.utils.multiclass import type_of_target, unique_labels
else:
    LabelBinarizer = _NumpyLabelBinarizer

    def type_of_target(y):
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] > 1:
            return "multilabel-indicator"
        return "multiclass" if len(np.unique(y)) > 2 else "binary"

    def unique_labels(*ys):
        return np.unique(np.concatenate([np.asarray(y).ravel() for y in ys]))
