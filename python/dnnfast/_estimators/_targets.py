"""Class labels <-> network outputs: scikit-learn's ``LabelBinarizer`` when it
is installed, a NumPy stand-in with the same behaviour otherwise.

``binarize_simple`` is the fit's fast path for the common case, a 1-D array of
integer, string or integral float labels: scikit-learn's ``type_of_target``,
``unique_labels`` and ``label_binarize`` cost more a fit than many epochs of a
small data set's arithmetic (BENCHMARKS.md, "Measurements behind the code":
binarize_simple) and reach the same result as one ``np.unique`` here.
Everything else (multi-label, object arrays, lists, column
vectors) goes through the binarizer's own checks."""
from __future__ import annotations

import numpy as np

from ._compat import HAVE_SKLEARN


def _object_labels(y):
    """An object array of labels as scikit-learn's type_of_target and
    unique_labels take it: its str as a '<U' array (unique_labels makes the
    classes from the sorted labels, so an object y's are '<U' there: kept as
    objects they made classes_ and predict differ by install). A first label
    that is no str makes the type unknown (ValueError); anything else among
    str fails scikit-learn's sort of the labels (TypeError), named here."""
    flat = y.ravel()
    if flat.size and not isinstance(flat[0], str):
        raise ValueError(f"Unknown label type: {(y,)!r}")
    none = object()  # (not None: None among str labels is a label to refuse)
    other = next((label for label in flat.tolist() if not isinstance(label, str)), none)
    if other is not none:
        raise TypeError(f"y: labels must be all strings or all numbers, got {type(other).__name__} "
                        f"{other!r:.40} among strings")
    return y.astype(str)


def _unique(y):
    """np.unique(y), str labels at their own width: scikit-learn's unique_labels
    makes the array anew from the sorted labels, so classes_ (and predict) of
    a '<U10' y, or of [1, 'a'] ('<U21' as an array), are '<U1'. In native byte
    order, as there: np.unique keeps a big-endian y's, and classes_ (and so
    predict's output) would be '>i8', which pandas refuses and a saved and
    loaded model does not give back."""
    if y.dtype.kind == "O":
        y = _object_labels(y)
    classes = np.unique(y)
    if classes.dtype.kind == "U" and classes.size:
        return np.asarray(classes.tolist())
    return classes if classes.dtype.isnative else classes.astype(classes.dtype.newbyteorder("="))


class _NumpyLabelBinarizer:
    """Binary -> one 0/1 column (1 = ``classes_[1]``), multi-class -> one-hot,
    multi-label indicator -> itself; ``inverse_transform`` thresholds at 0.5 or
    takes the arg-max."""

    def fit(self, y):
        y = np.asarray(y)
        if y.dtype.kind == "O":
            y = _object_labels(y)
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
        self.classes_ = _unique(y)
        self.y_type_ = "multiclass" if len(self.classes_) > 2 else "binary"
        return self

    def transform(self, y):
        y = np.asarray(y)
        if y.dtype.kind == "O" and self.classes_.dtype.kind == "U":
            y = _object_labels(y)
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


def binarize_simple(y, fitted=None):
    """For a 1-D integer, unsigned, str or finite integral float array:
    ``(binarizer, Y)``, the binarizer fitted on ``y`` (or ``fitted``, whose
    classes must hold every label of ``y``) and ``Y`` the
    boolean outputs ``binarizer.transform(y)`` would give. ``None`` for any
    other ``y``: the caller takes the general path."""
    if type(y) is not np.ndarray or y.ndim != 1 or y.shape[0] == 0 or y.dtype.kind not in "iuUf":
        return None
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.array_equal(y, np.floor(y))):
        return None  # continuous or non-finite: the general path raises scikit-learn's error
    if fitted is None:
        # Not np.unique(return_inverse=True): its argsort (NumPy's AVX2 sort)
        # crashed the CI's emulated Haswell; positions by bisection are the same.
        classes = _unique(y)
        pos = np.searchsorted(classes, y)
        lb = LabelBinarizer()
        lb.y_type_ = "multiclass" if len(classes) > 2 else "binary"
        lb.classes_ = classes
        if HAVE_SKLEARN:
            lb.sparse_input_ = False
    else:
        lb = fitted
        classes = lb.classes_
        if lb.y_type_ == "multilabel-indicator" or classes.dtype.kind != y.dtype.kind:
            return None
        pos = np.searchsorted(classes, y)
        if pos.max() >= len(classes) or not np.array_equal(classes[pos], y):
            return None  # a label outside the classes: the general path names it
    if lb.y_type_ == "binary":
        Y = (pos == 1).reshape(-1, 1) if len(classes) == 2 else np.zeros((len(y), 1), dtype=bool)
    else:
        Y = np.zeros((len(y), len(classes)), dtype=bool)
        Y[np.arange(len(y)), pos] = True
    return lb, Y


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
        return _unique(np.concatenate([np.asarray(y).ravel() for y in ys]))
