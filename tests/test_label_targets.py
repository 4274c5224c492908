"""MLPClassifier's targets: the fit's fast path for plain label arrays
(``_targets.binarize_simple``) against scikit-learn's ``LabelBinarizer``, and
the label errors of the general path it falls back to."""
import numpy as np
import pytest

import dnnfast
from dnnfast._estimators._targets import LabelBinarizer, binarize_simple

LABELS = [
    np.array([3, 1, 2, 1, 3, 3]),                       # multi-class int64
    np.array([0, 1, 1, 0]),                             # binary
    np.array([5, 5, 5]),                                # one class: a column of zeros
    np.array(["b", "a", "c", "a"]),                     # str
    np.array([1.0, 2.0, 1.0, -3.0]),                    # integral floats
    np.array([2.0, 3.0]),
    np.array([7, 200, 7], dtype=np.uint8),
    np.array([-1, 1, -1], dtype=np.int8),
    np.arange(40) % 13,                                 # many classes
]


@pytest.mark.parametrize("y", LABELS, ids=lambda y: f"{y.dtype}-{len(np.unique(y))}")
def test_fast_path_is_the_label_binarizer(y):
    lb = LabelBinarizer().fit(y)
    expected = lb.transform(y).astype(bool)
    fast = binarize_simple(y)
    assert fast is not None
    got_lb, Y = fast
    assert got_lb.y_type_ == lb.y_type_
    assert got_lb.classes_.dtype == lb.classes_.dtype
    assert np.array_equal(got_lb.classes_, lb.classes_)
    assert Y.dtype == bool and Y.shape == expected.shape
    assert np.array_equal(Y, expected)
    assert vars(got_lb).keys() == vars(lb).keys()  # a whole fitted binarizer (pickles, model files)
    out = Y.astype(np.float64)
    assert np.array_equal(got_lb.inverse_transform(out), lb.inverse_transform(out))
    # Given the fitted binarizer (warm start, partial_fit): the same outputs.
    again = binarize_simple(y[::-1], got_lb)
    assert again is not None and again[0] is got_lb
    assert np.array_equal(again[1], lb.transform(y[::-1]).astype(bool))


@pytest.mark.parametrize("y", [
    np.array([0.5, 1.0]),                 # continuous: scikit-learn's error, from the general path
    np.array([1.0, np.nan]),
    np.array([True, False]),
    np.array([b"a", b"b"]),
    np.array([[0, 1], [1, 0]]),           # multi-label indicator
    np.array([1, "a"], dtype=object),
    [0, 1, 2],
    np.array([], dtype=np.int64),
], ids=["continuous", "nan", "bool", "bytes", "indicator", "object", "list", "empty"])
def test_other_targets_take_the_general_path(y):
    assert binarize_simple(y) is None


def test_labels_outside_the_fitted_classes_take_the_general_path():
    lb = binarize_simple(np.array([0, 1, 2]))[0]
    assert binarize_simple(np.array([0, 3]), lb) is None
    assert binarize_simple(np.array(["0", "1"]), lb) is None  # another kind of label


@pytest.mark.parametrize("y", [np.arange(60) % 3, (np.arange(60) % 3).astype(str), (np.arange(60) % 2) * 2.0 - 1])
def test_fit_on_arrays_and_lists_agree(y):
    X = np.random.default_rng(0).standard_normal((60, 4))
    a = dnnfast.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)
    b = dnnfast.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, list(y))
    assert np.array_equal(a.classes_, b.classes_)
    assert a._label_binarizer.y_type_ == b._label_binarizer.y_type_
    for ca, cb in zip(a.coefs_, b.coefs_):
        assert np.array_equal(ca, cb)
    assert np.array_equal(a.predict(X), b.predict(X))


def test_label_errors_still_name_the_problem():
    X = np.random.default_rng(0).standard_normal((6, 3))
    with pytest.raises(ValueError, match="[Uu]nknown label type"):
        dnnfast.MLPClassifier(max_iter=2).fit(X, np.array([0.5, 1.5, 0.5, 1.5, 0.5, 2.5]))
    clf = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, warm_start=True, random_state=0)
    clf.fit(X, np.array([0, 1, 2, 0, 1, 2]))
    with pytest.raises(ValueError, match="warm_start can only be used"):
        clf.fit(X, np.array([0, 1, 0, 1, 0, 1]))
    inc = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), random_state=0)
    inc.partial_fit(X, np.array([0, 1, 0, 1, 0, 1]), classes=[0, 1])
    with pytest.raises(ValueError, match="classes not in"):
        inc.partial_fit(X, np.array([0, 1, 2, 0, 1, 2]))
    inc.partial_fit(X, np.array([1, 1, 1, 1, 1, 1]))  # a subset of the classes is fine
