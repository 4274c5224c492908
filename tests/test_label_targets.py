"""MLPClassifier's targets: the fit's fast path for plain label arrays
(``_targets.binarize_simple``) against scikit-learn's ``LabelBinarizer``, and
the label errors of the general path it falls back to."""
import numpy as np
import pytest

import dnnfast
from conftest import run_without
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


_STR_CLASSES = """
import json, numpy as np
import dnnfast
X = np.random.default_rng(0).standard_normal((20, 3))
out = {}
for name, y in [("<U10", np.array(["b", "a"] * 10, dtype="<U10")), ("mixed list", [1, "a"] * 10),
                ("three", np.array(["b", "a", "cc"] * 6 + ["a", "b"], dtype="<U10")),
    # object arrays of str: scikit-learn's classes are '<U' (the stand-in kept them objects)
    ("object", np.array(["b", "a"] * 10, dtype=object)),
    ("object three", np.array(["b", "a", "cc"] * 6 + ["a", "b"], dtype=object)),
]:
    clf = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
    out[name] = [str(clf.classes_.dtype), str(clf.predict(X).dtype)]
clf = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), random_state=0)
clf.partial_fit(X, np.array(["a", "b"] * 10, dtype="<U10"), classes=np.array(["a", "b"], dtype="<U10"))
out["partial_fit"] = [str(clf.classes_.dtype), str(clf.predict(X).dtype)]
clf = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), random_state=0, class_weight={"a": 2.0, "b": 1.0})
y = np.array(["a", "b"] * 10, dtype=object)
clf.partial_fit(X, y, classes=np.array(["a", "b"], dtype=object))
clf.partial_fit(X, y)
out["partial_fit object"] = [str(clf.classes_.dtype), str(clf.predict(X).dtype), clf.score(X, y) >= 0]
for name, y in [("object int", np.array([1, 2] * 10, dtype=object)), ("object mix", np.array(["a", 2] * 10, dtype=object)),
                ("object None", np.array(["a", "b", None, "a"] * 5, dtype=object))]:
    try:
        dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
        out[name] = "accepted"
    except (TypeError, ValueError) as exc:  # as scikit-learn's: its sort of the labels raises the TypeError
        out[name] = [type(exc).__name__, str(exc)[:20] if isinstance(exc, ValueError) else ""]
print(json.dumps(out))
"""

# scikit-learn's unique_labels makes the classes anew from the sorted labels
# (np.asarray(sorted(set(y)))): the narrowest str dtype, whatever y's was.
_SK_STR_CLASSES = {"<U10": ["<U1", "<U1"], "mixed list": ["<U1", "<U1"], "three": ["<U2", "<U2"],
                   "object": ["<U1", "<U1"], "object three": ["<U2", "<U2"],
                   "partial_fit": ["<U1", "<U1"], "partial_fit object": ["<U1", "<U1", True],
                   # a first label that is no str: an unknown type; a str among numbers: a mix
                   "object int": ["ValueError", "Unknown label type: "], "object mix": ["TypeError", ""],
                   "object None": ["TypeError", ""]}


def test_str_classes_have_scikit_learns_dtype():
    """classes_ (so predict) kept y's itemsize: '<U10' for a '<U10' y, '<U21'
    for [1, 'a'], where scikit-learn's are '<U1'."""
    ns = {}
    exec(_STR_CLASSES, ns)
    assert ns["out"] == _SK_STR_CLASSES
    sklearn = pytest.importorskip("sklearn.neural_network")
    X = np.random.default_rng(0).standard_normal((20, 3))
    ref = sklearn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    ref.fit(X, np.array(["b", "a", "cc"] * 6 + ["a", "b"], dtype="<U10"))
    assert str(ref.classes_.dtype) == _SK_STR_CLASSES["three"][0]


def test_str_classes_have_scikit_learns_dtype_without_sklearn():
    assert run_without(["sklearn"], _STR_CLASSES) == _SK_STR_CLASSES


_BE_CLASSES = """
import json, numpy as np
import dnnfast
X = np.random.default_rng(0).standard_normal((20, 3))
out = {}
for name, y in [(">i8", np.array([0, 1, 2, 1] * 5, dtype=">i8")), (">f8", np.array([0.0, 1.0] * 10, dtype=">f8")),
                (">U2", np.array(["b", "a", "cc", "a"] * 5, dtype=">U2"))]:
    clf = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0).fit(X, y)
    out[name] = [str(clf.classes_.dtype), str(clf.predict(X).dtype)]
clf = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), random_state=0)
clf.partial_fit(X, np.array([0, 1] * 10, dtype=">i8"), classes=np.array([0, 1], dtype=">i8"))
out["partial_fit"] = [str(clf.classes_.dtype), str(clf.predict(X).dtype)]
print(json.dumps(out))
"""
# scikit-learn's classes (so its predictions) are in native byte order whatever y's.
_SK_BE_CLASSES = {">i8": ["int64", "int64"], ">f8": ["float64", "float64"], ">U2": ["<U2", "<U2"],
                  "partial_fit": ["int64", "int64"]}


def test_big_endian_labels_give_native_classes():
    """A big-endian y (read from a FITS or network-order file) kept its byte
    order in classes_ and predict's output, which pandas refuses."""
    ns = {}
    exec(_BE_CLASSES, ns)
    assert ns["out"] == _SK_BE_CLASSES
    sklearn = pytest.importorskip("sklearn.neural_network")
    X = np.random.default_rng(0).standard_normal((20, 3))
    ref = sklearn.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    assert str(ref.fit(X, np.array([0, 1, 2, 1] * 5, dtype=">i8")).classes_.dtype) == "int64"


def test_big_endian_labels_give_native_classes_without_sklearn():
    assert run_without(["sklearn"], _BE_CLASSES) == _SK_BE_CLASSES
