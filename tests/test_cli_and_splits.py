"""Input checks of python -m dnnfast's options, datasets.train_test_split and
to_onnx's class labels: bad input is refused with an error naming it, never
coerced into a nonsense result."""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

import dnnfast
from dnnfast.datasets import load_digits, train_test_split


# -- python -m dnnfast: option values ---------------------------------------------------

def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "dnnfast", *args], capture_output=True, text=True, timeout=120,
                          **kw)


@pytest.mark.parametrize("option, value, expected", [
    ("--epochs", "-3", "must be a positive integer"),
    ("--epochs", "0", "must be a positive integer"),
    ("--epochs", "2.5", "must be a positive integer"),
    ("--batch-size", "0", "must be a positive integer"),
    ("--batch-size", "-1", "must be a positive integer"),
    ("--learning-rate", "nan", "must be a finite number in (0, 1]"),
    ("--learning-rate", "inf", "must be a finite number in (0, 1]"),
    ("--learning-rate", "0", "must be a finite number in (0, 1]"),
    ("--learning-rate", "-0.1", "must be a finite number in (0, 1]"),
    ("--learning-rate", "1.5", "must be a finite number in (0, 1]"),  # fit's own bound
    ("--learning-rate", "fast", "must be a finite number in (0, 1]"),
    ("--hidden", "0", "must be a positive integer"),
    ("--hidden", "-5", "must be a positive integer"),
    ("--threads", "-1", "must be an integer in [0, 65536]"),
    ("--threads", "70000", "must be an integer in [0, 65536]"),  # what set_num_threads accepts
    ("--seed", "-1", "must be a non-negative integer"),
])
def test_main_refuses_bad_option_values_before_any_work(option, value, expected):
    out = _cli(option, value)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == ""  # no banner: refused before loading data or training
    assert "usage: python -m dnnfast" in out.stderr
    assert f"argument {option}: {expected}, got {value!r}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("dtype, rate, tiny", [("float32", "1e-40", "1.17549e-38"), ("float64", "1e-310", "2.22507e-308")])
def test_main_refuses_a_learning_rate_below_the_dtypes_smallest_normal_as_a_usage_error(dtype, rate, tiny):
    """fit refuses it; the option took it, and the job ended in a traceback and
    status 1 ("accuracy below 95%") after the banner."""
    out = _cli("--learning-rate", rate, "--dtype", dtype, "--no-reference")
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stdout == "" and "Traceback" not in out.stderr
    assert f"argument --learning-rate: learning_rate must be at least {tiny} for a {dtype} network" in out.stderr


def test_main_checks_every_hidden_width():
    out = _cli("--hidden", "8", "-5")
    assert out.returncode == 2 and "argument --hidden: must be a positive integer, got '-5'" in out.stderr


@pytest.mark.parametrize("unbuffered", ["", "1"])
def test_main_ends_quietly_when_the_reader_goes(unbuffered):
    """`python -m dnnfast | head -1`: the reader closes the pipe; no BrokenPipeError
    traceback, status 141 (128 + SIGPIPE). Buffered, the first flush comes after
    epoch 1 (hence one short epoch); unbuffered, the banner meets the closed pipe."""
    r, w = os.pipe()
    os.close(r)
    try:
        env = dict(os.environ, PYTHONUNBUFFERED=unbuffered)
        out = subprocess.run([sys.executable, "-m", "dnnfast", "--epochs", "1", "--threads", "1", "--no-reference"],
                             stdout=w, stderr=subprocess.PIPE, text=True, env=env, timeout=300)
    finally:
        os.close(w)
    assert out.returncode == 141, out.stderr
    assert out.stderr == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_main_says_when_stdout_cannot_be_written_with_its_own_status():
    """`python -m dnnfast > /dev/full`: one line on stderr and status 74
    (EX_IOERR); it was a traceback and status 1, which means "accuracy
    below 95%"."""
    with open("/dev/full", "w") as full:
        out = subprocess.run([sys.executable, "-m", "dnnfast", "--epochs", "1", "--threads", "1", "--no-reference"],
                             stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert out.returncode == 74, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.count("\n") == 1 and "stdout" in out.stderr and "No space left" in out.stderr, out.stderr


def test_main_help_states_the_exit_statuses_and_the_defaults():
    out = _cli("--help")
    assert out.returncode == 0, out.stderr
    for status, meaning in ((0, "reached 95%"), (1, "below 95%"), (2, "usage"), (3, "diverged"), (74, "stdout"),
                            (130, "Ctrl-C"), (141, "reader")):
        assert re.search(rf"^ +{status} +.*{re.escape(meaning)}", out.stdout, re.M), (status, out.stdout)
    text = " ".join(out.stdout.split())  # (argparse wraps an option's help to the terminal's width)
    for option, default in (("--epochs", "30"), ("--batch-size", "32"), ("--learning-rate", "0.1"),
                            ("--hidden", "[128, 64]"), ("--dtype", "float32"), ("--seed", "0")):
        assert re.search(rf"{option} .*?\(default: {re.escape(default)}\)", text), (option, out.stdout)


# -- datasets.train_test_split ---------------------------------------------------------

def _data(n=40, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 2)), rng.integers(0, classes, n)


@pytest.mark.parametrize("test_fraction, seed", [(0.25, 0), (0.1, 7), (0.9, np.int64(3)), (np.float32(0.3), 5)])
def test_split_of_valid_input_is_stratified_and_seeded(test_fraction, seed):
    """The test part has ceil(test_fraction * n) rows, each class within one
    row of its share; the parts partition the rows; the same seed gives the
    same split."""
    X, y = load_digits()
    rows = np.arange(len(y))
    r_train, r_test, y_train, y_test = train_test_split(rows, y, test_fraction=test_fraction, seed=seed)
    assert sorted(np.concatenate([r_train, r_test]).tolist()) == rows.tolist()
    np.testing.assert_array_equal(y[r_train], y_train)
    np.testing.assert_array_equal(y[r_test], y_test)
    assert len(r_test) == int(np.ceil(np.float64(test_fraction) * len(y)))
    for c in np.unique(y):
        assert abs(np.count_nonzero(y_test == c) - test_fraction * np.count_nonzero(y == c)) < 1
    again = train_test_split(rows, y, test_fraction=test_fraction, seed=seed)
    np.testing.assert_array_equal(again[1], r_test)


def test_split_rows_are_pinned():
    """Pinned (the digits demo's accuracy depends on its split, which the
    total's rule left as it was). Rounded per class alone, these 40 rows at
    0.25 gave 11 test rows; the total is now ceil(0.25 * 40) = 10."""
    _, y = _data()
    assert train_test_split(np.arange(40), y, 0.25, 0)[1].tolist() == [0, 5, 7, 8, 19, 20, 22, 26, 35, 38]
    _, yd = load_digits()
    demo = train_test_split(np.arange(len(yd)), yd, 0.25, 0)[1]  # python -m dnnfast's: as in every release
    assert hashlib.sha256(demo.astype("<i8").tobytes()).hexdigest()[:16] == "b5f40a368eb2b91e"


@pytest.mark.parametrize("classes, per_class, fraction", [(10, 3, 0.5), (10, 5, 0.5), (2, 5, 0.5), (4, 10, 0.1),
                                                          (3, 7, 0.33)])
def test_split_takes_the_fraction_of_all_rows(classes, per_class, fraction):
    """Rounded per class, 10 classes of 3 rows at 0.5 gave 20 test rows of
    30, and 40 rows at 0.1 were refused as an empty test part."""
    y = np.repeat(np.arange(classes), per_class)
    _, r_test, _, y_test = train_test_split(np.arange(y.size), y, test_fraction=fraction, seed=0)
    assert len(r_test) == int(np.ceil(fraction * y.size))
    for c in range(classes):
        assert abs(np.count_nonzero(y_test == c) - fraction * per_class) < 1


def test_split_stratifies_one_hot_and_multilabel_rows():
    """A one-hot Y (SPEC: cce's usual targets) raised IndexError, or split by
    flat positions, not rows, into a wrong and unbalanced test part."""
    y = np.repeat(np.arange(4), 10)
    Y = np.eye(4)[y]
    for seed in range(5):
        r_train, r_test, Y_train, Y_test = train_test_split(np.arange(40), Y, test_fraction=0.3, seed=seed)
        assert sorted(np.concatenate([r_train, r_test]).tolist()) == list(range(40))
        np.testing.assert_array_equal(Y_test, Y[r_test])
        np.testing.assert_array_equal(Y_test.sum(axis=0), [3, 3, 3, 3])  # 12 test rows, 3 of each class
    M = (np.random.default_rng(0).random((30, 3)) < 0.5).astype(float)  # multi-label rows
    r_train, r_test, m_train, m_test = train_test_split(np.arange(30), M, test_fraction=0.5, seed=0)
    assert len(r_test) == 15 and sorted(np.concatenate([r_train, r_test]).tolist()) == list(range(30))
    np.testing.assert_array_equal(m_test, M[r_test])


def test_split_of_lists_and_pandas_objects_splits_rows():
    """A list gave NumPy's 'only integer scalar arrays' TypeError; a DataFrame
    was indexed by column labels (X_train of shape (10, 8) beside y_train of 8)."""
    X = np.arange(20.0).reshape(10, 2)
    y = np.arange(10) % 2
    ref = train_test_split(X, y, 0.2, 0)
    got = train_test_split(X.tolist(), y.tolist(), 0.2, 0)
    for a, b in zip(got, ref):
        np.testing.assert_array_equal(a, b)
    pd = pytest.importorskip("pandas")
    df, s = pd.DataFrame(X, columns=["a", "b"]), pd.Series(y)
    d_train, d_test, s_train, s_test = train_test_split(df, s, 0.2, 0)
    assert isinstance(d_train, pd.DataFrame) and d_train.shape == (8, 2) and s_train.shape == (8,)
    np.testing.assert_array_equal(d_test.to_numpy(), ref[1])
    np.testing.assert_array_equal(s_test.to_numpy(), ref[3])


@pytest.mark.parametrize("y, exc, match", [
    (np.array([0.0, 1.0, np.nan, 1.0, 0.0, 1.0]), ValueError, "y contains NaN"),
    (np.array([0, 1, None, 1, 0, 1], dtype=object), TypeError, "y: labels must be comparable"),
    # each NaN of an object y (a pandas object column) was a class of its own
    (np.array([0.0, 1.0, np.nan, 1.0, 0.0, np.nan], dtype=object), ValueError, "y contains NaN"),
    (np.array([[0, np.float32("nan")], [1, 0]] * 3, dtype=object), ValueError, "y contains NaN"),
    (np.zeros((6, 2, 2)), ValueError, "y must be 1-D labels or 2-D rows"),
])
def test_split_refuses_labels_it_cannot_stratify(y, exc, match):
    """NaN labels were never put in the test part; None gave a raw '<' not supported TypeError."""
    with pytest.raises(exc, match=match):
        train_test_split(np.zeros((6, 1)), y)


def test_split_of_a_sparse_X_splits_rows():
    """A sparse X was taken as a 0-d object array: 'len() of unsized object'."""
    sparse = pytest.importorskip("scipy.sparse")
    X, y = _data()
    ref = train_test_split(X, y, 0.25, 0)
    for make in (sparse.csr_matrix, sparse.csc_matrix, sparse.coo_matrix):
        got = train_test_split(make(X), y, 0.25, 0)
        assert all(sparse.issparse(g) and g.format == "csr" for g in got[:2])
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a.toarray() if sparse.issparse(a) else a, b)


@pytest.mark.parametrize("name, bad", [("X", np.array(3.0)), ("X", {1: 2}), ("X", 5), ("y", np.array(1)),
                                       ("y", {0: 1})])
def test_split_refuses_arguments_without_rows_naming_them(name, bad):
    X, y = _data()
    args = {"X": X, "y": y, name: bad}
    with pytest.raises(TypeError, match=f"^{name} must be an array .*one row per sample"):
        train_test_split(args["X"], args["y"])


@pytest.mark.parametrize("bad", [True, False, np.bool_(True), "0.25", None, 1j])
def test_split_refuses_a_test_fraction_that_is_not_a_number(bad):
    X, y = _data()
    with pytest.raises(TypeError, match="test_fraction"):
        train_test_split(X, y, test_fraction=bad)


@pytest.mark.parametrize("bad", [-0.5, 0.0, 0, 1, 1.0, 1.5, float("nan"), float("inf"), np.float64(-0.1)])
def test_split_refuses_a_test_fraction_outside_0_1(bad):
    X, y = _data()
    with pytest.raises(ValueError, match=r"test_fraction must lie in \(0, 1\)"):
        train_test_split(X, y, test_fraction=bad)


def test_split_says_when_the_train_part_would_be_empty():
    X, y = _data(n=12)  # ceil(0.99 * 12) = 12 test rows (the test part takes at least one row)
    with pytest.raises(ValueError, match="test_fraction=.* leaves the train part empty for these 12 rows"):
        train_test_split(X, y, test_fraction=0.99)
    assert len(train_test_split(X, y, test_fraction=0.01)[1]) == 1


@pytest.mark.parametrize("n_x, n_y", [(40, 30), (30, 40)])
def test_split_refuses_x_and_y_of_different_lengths(n_x, n_y):
    X, y = _data(n=40)
    with pytest.raises(ValueError, match=f"X and y .*len\\(X\\)={n_x} and len\\(y\\)={n_y}"):
        train_test_split(X[:n_x], y[:n_y])


@pytest.mark.parametrize("n", [0, 1])
def test_split_refuses_fewer_than_two_rows(n):
    X, y = _data(n=n)
    with pytest.raises(ValueError, match=f"at least 2 rows.*got {n}"):
        train_test_split(X, y)


@pytest.mark.parametrize("bad, exc", [(-1, ValueError), (True, TypeError), (1.5, TypeError), ("0", TypeError),
                                      (None, TypeError), (np.random.default_rng(0), TypeError)])
def test_split_refuses_a_bad_seed(bad, exc):
    X, y = _data()
    with pytest.raises(exc, match="seed must be a non-negative integer"):
        train_test_split(X, y, seed=bad)


# -- to_onnx: integer labels ONNX's int64 cannot hold ----------------------------------

def _classifier(y, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter reached: the fit need not converge
        return dnnfast.MLPClassifier(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, y)


@pytest.mark.parametrize("n_classes", [2, 3])  # the binary head and the multi-class one
def test_to_onnx_refuses_uint64_classes_beyond_int64(tmp_path, n_classes):
    pytest.importorskip("onnx")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    labels = np.array([1, 2 ** 63 + 5, 2 ** 64 - 1][:n_classes], dtype=np.uint64)
    clf = _classifier(labels[rng.integers(0, n_classes, 60)], X)
    path = tmp_path / "clf.onnx"
    with pytest.raises(NotImplementedError, match=f"classes_ value {labels.max()} is outside int64"):
        dnnfast.to_onnx(clf, path)
    assert not path.exists()  # refused before anything is written


def test_to_onnx_keeps_uint64_classes_that_fit_int64():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    labels = np.array([1, 2 ** 63 - 1], dtype=np.uint64)  # the largest int64 still fits
    clf = _classifier(labels[rng.integers(0, 2, 60)], X)
    model = dnnfast.to_onnx(clf)
    tables = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.startswith("classes")]
    assert len(tables) == 1 and tables[0].dtype == np.int64
    np.testing.assert_array_equal(tables[0].astype(np.uint64), labels)
    assert isinstance(model, onnx.ModelProto)
