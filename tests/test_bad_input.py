"""Bad input gets a ValueError or TypeError whose message names the argument,
before any array reaches the C++ core; a failed assignment leaves the network
unchanged."""
from __future__ import annotations

import numpy as np
import pytest

import dnnfast
from dnnfast import _core


def make(dtype="float64", loss="cce", sizes=(4, 5, 3), acts=("tanh", "softmax")):
    return dnnfast.Network(list(sizes), list(acts), loss=loss, dtype=dtype, seed=0)


def good(n=6):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 4))
    Y = np.eye(3)[rng.integers(0, 3, n)]
    return X, Y


# ---------------------------------------------------------------------------
# Constructor
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("sizes,exc", [
    ([4, 0, 3], ValueError), ([4, -2, 3], ValueError), ([0, 3], ValueError), ([4], ValueError),
    ([], ValueError), ([4, 2.5, 3], TypeError), ([4, True, 3], TypeError), ("4,3", TypeError),
    (5, TypeError), ([4, "5", 3], TypeError), (np.array(4), TypeError),
    # No order to take: a set built [2, 4, 30] from {30, 4, 2}, a dict its keys.
    ({30, 4, 2}, TypeError), (frozenset({4, 3}), TypeError), ({4: 1, 3: 1}, TypeError),
])
def test_bad_sizes_raise_naming_sizes(sizes, exc):
    with pytest.raises(exc, match="sizes"):
        dnnfast.Network(sizes, "tanh", loss="sse")


@pytest.mark.parametrize("acts,exc,match", [
    (["tanh", "softmaxx"], ValueError, "unknown activation 'softmaxx'"),
    (["", "softmax"], ValueError, "unknown activation"),
    (["tanh"], ValueError, "activations"),
    (["tanh", "softmax", "relu"], ValueError, "activations"),
    ([3, "softmax"], TypeError, "activation"),
    ([("relu", {"alpha": 0.1}), "softmax"], ValueError, "alpha"),
    ([("leaky_relu", {"beta": 0.1}), "softmax"], ValueError, "beta"),
    ([("leaky_relu", {"alpha": float("nan")}), "softmax"], ValueError, "alpha"),
    ([("leaky_relu", {"alpha": "big"}), "softmax"], ValueError, "alpha"),
    ([("leaky_relu", 0.1), "softmax"], TypeError, "activations"),
    # "'NoneType' object is not iterable" before; a set has no layer order.
    (None, TypeError, "activations must be a name"),
    (5, TypeError, "activations must be a name"),
    ({"tanh", "softmax"}, TypeError, "activations must be a name"),
    ({"tanh": 1, "softmax": 2}, TypeError, "activations must be a name"),
])
def test_bad_activations_raise_naming_activations(acts, exc, match):
    with pytest.raises(exc, match=match):
        dnnfast.Network([4, 5, 3], acts, loss="cce")


def test_error_names_which_layer_has_the_unknown_activation():
    with pytest.raises(ValueError, match=r"activations\[1\]"):
        dnnfast.Network([4, 5, 3], ["tanh", "sofmax"], loss="cce")


@pytest.mark.parametrize("loss,exc", [("hinge", ValueError), ("", ValueError), (None, TypeError),
                                      (3, TypeError)])
def test_unknown_loss_raises_naming_loss(loss, exc):
    with pytest.raises(exc, match="loss"):
        dnnfast.Network([4, 3], ["softmax"], loss=loss)


@pytest.mark.parametrize("sizes,acts,loss,match", [
    ([64, 64, 10], "relu", "cce", "'relu' applies to every layer, the output too"),
    ([4, 5, 3], ["relu", "identity"], "cce", "output activation is 'identity'"),
    ([4, 5, 3], ["relu", "sigmoid"], "cce", "output activation is 'sigmoid'"),
    ([4, 5, 3], ["relu", "softmax"], "bce", "output activation is 'softmax'"),
    ([4, 5, 1], ["relu", "identity"], "poisson", "output activation is 'identity'"),
    ([4, 5, 1], ["relu", "relu"], "poisson", "output activation is 'relu'"),
    ([4, 5, 1], ["relu", "elu"], "poisson", "output activation is 'elu'"),
])
def test_output_loss_pairing_that_cannot_learn_warns_naming_the_usual_pairing(sizes, acts, loss, match):
    with pytest.warns(UserWarning, match=match) as record:
        dnnfast.Network(sizes, acts, loss=loss)
    assert "softmax + cce, sigmoid + bce, identity/relu + sse/mse, exp + poisson" in str(record[0].message)


@pytest.mark.parametrize("acts,loss", [(["relu", "softmax"], "cce"), (["tanh", "sigmoid"], "bce"),
                                       (["relu", "identity"], "sse"), (["relu", "relu"], "mse"),
                                       (["tanh", "exp"], "poisson"), (["tanh", "softplus"], "poisson"),
                                       (["tanh", "sigmoid"], "poisson"), ("sigmoid", "bce")])
def test_usual_output_loss_pairings_construct_without_a_warning(acts, loss):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dnnfast.Network([4, 5, 3], acts, loss=loss)


@pytest.mark.parametrize("dtype", ["float16", "int32", np.int64, "complex128", None, "float"])
def test_unsupported_dtype_raises_naming_dtype(dtype):
    with pytest.raises((ValueError, TypeError), match="dtype"):
        dnnfast.Network([4, 3], ["softmax"], loss="cce", dtype=dtype)


def test_bad_init_raises_naming_init():
    with pytest.raises(ValueError, match="init"):
        dnnfast.Network([4, 3], ["softmax"], init="zeros")


# ---------------------------------------------------------------------------
# X and Y in every method
# ---------------------------------------------------------------------------

def methods(net, X, Y):
    """Each public method that takes data, as a callable of (X, Y)."""
    return {
        "forward": lambda X, Y: net.forward(X),
        "predict": lambda X, Y: net.predict(X),
        "cost": lambda X, Y: net.cost(X, Y),
        "gradients": lambda X, Y: net.gradients(X, Y),
        "loss_and_gradient": lambda X, Y: net.loss_and_gradient(X, Y),
        "fit": lambda X, Y: net.fit(X, Y, epochs=1),
    }


METHODS = ["forward", "predict", "cost", "gradients", "loss_and_gradient", "fit"]
Y_METHODS = ["cost", "gradients", "loss_and_gradient", "fit"]


def bad_X_cases():
    X, _ = good()
    nanX = X.copy(); nanX[2, 1] = np.nan
    infX = X.copy(); infX[0, 0] = -np.inf
    return [
        pytest.param(X[:, :3], ValueError, "X has 3 columns", id="too-few-columns"),
        pytest.param(np.hstack([X, X]), ValueError, "X has 8 columns", id="too-many-columns"),
        pytest.param(X[0], ValueError, "X must be 2-D", id="1-D"),
        pytest.param(X[None], ValueError, "X must be 2-D", id="3-D"),
        pytest.param(np.float64(1.0), ValueError, "X must be 2-D", id="scalar"),
        pytest.param(np.zeros((0, 4)), ValueError, "X is empty", id="empty"),
        pytest.param(nanX, ValueError, "X contains NaN", id="nan"),
        pytest.param(infX, ValueError, "X contains NaN or infinity", id="inf"),
        pytest.param(np.full((6, 4), 1e300), ValueError, "X contains", id="overflows-float32"),
        pytest.param(X.astype(object), TypeError, "X must have a real numeric dtype", id="object"),
        pytest.param(X.astype(np.complex128), TypeError, "X must have a real numeric dtype", id="complex"),
        pytest.param(X.astype(str), TypeError, "X must have a real numeric dtype", id="str"),
        pytest.param([[1, 2, 3, 4], [1, 2]], TypeError, "X", id="ragged"),
        pytest.param(np.zeros((6, 4), dtype="datetime64[s]"), TypeError, "X", id="datetime"),
    ]


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a clean exception, no stray warning
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("X,exc,match", bad_X_cases())
def test_bad_X_raises_naming_X(method, X, exc, match):
    net = make("float32")
    _, Y = good()
    P = net.parameters.copy()
    with pytest.raises(exc, match=match):
        methods(net, X, Y)[method](X, Y)
    np.testing.assert_array_equal(net.parameters, P)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rows,at", [(1, (0, 3)), (6, (5, 0)), (40, (39, 3))])
def test_predict_refuses_non_finite_X_of_the_model_dtype(dtype, bad, rows, at):
    # X already C-contiguous in the model's dtype is passed on unconverted,
    # and the core's predict checks it in its own pass: the same refusal,
    # whichever element is bad.
    net = make(dtype)
    X = np.random.default_rng(1).standard_normal((rows, 4)).astype(dtype)
    assert net.predict(X).shape == (rows, 3)
    X[at] = bad
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.predict(X)


def bad_Y_cases():
    _, Y = good()
    nanY = Y.copy(); nanY[1, 1] = np.nan
    infY = Y.copy(); infY[1, 1] = np.inf
    return [
        pytest.param(Y[:5], ValueError, "Y has 5 rows but X has 6", id="fewer-rows"),
        pytest.param(np.vstack([Y, Y]), ValueError, "Y has 12 rows", id="more-rows"),
        pytest.param(Y[:, :2], ValueError, "Y has 2 columns but the network has 3 outputs", id="narrow"),
        pytest.param(np.hstack([Y, Y]), ValueError, "Y has 6 columns", id="wide"),
        pytest.param(Y[None], ValueError, "Y must be 2-D", id="3-D"),
        pytest.param(Y.ravel().astype(np.float64), ValueError, "a 1-D Y for cce must hold integer class labels",
                     id="1-D-floats"),
        pytest.param(np.array([0, 1, 2, 3, 0, 1]), ValueError, r"Y: class labels must lie in \[0, 3\)",
                     id="label-too-large"),
        pytest.param(np.array([0, 1, -1, 2, 0, 1]), ValueError, "class labels", id="label-negative"),
        pytest.param(np.array([0, 1, 2]), ValueError, "Y has 3 labels but X has 6", id="too-few-labels"),
        pytest.param(nanY, ValueError, "Y contains NaN", id="nan"),
        pytest.param(infY, ValueError, "Y contains NaN or infinity", id="inf"),
        pytest.param(Y.astype(object), TypeError, "Y must have a real numeric dtype", id="object"),
        pytest.param(Y.astype(np.complex64), TypeError, "Y must have a real numeric dtype", id="complex"),
        pytest.param(Y.astype(str), TypeError, "Y must have a real numeric dtype", id="str"),
        pytest.param(np.zeros((0, 3)), ValueError, "Y", id="empty"),
    ]


@pytest.mark.parametrize("method", Y_METHODS)
@pytest.mark.parametrize("Y,exc,match", bad_Y_cases())
def test_bad_Y_raises_naming_Y(method, Y, exc, match):
    net = make("float64")
    X, _ = good()
    P = net.parameters.copy()
    with pytest.raises(exc, match=match):
        methods(net, X, Y)[method](X, Y)
    np.testing.assert_array_equal(net.parameters, P)


@pytest.mark.parametrize("loss,act,Y,match", [
    ("cce", "softmax", -np.eye(3)[[0, 1, 2, 0, 1, 2]], r"cce loss needs targets >= 0"),
    ("bce", "sigmoid", np.full((6, 3), 5.0), r"bce loss needs targets in \[0, 1\], got 5\.\.5"),
    ("bce", "sigmoid", np.full((6, 3), -0.5), r"bce loss needs targets in \[0, 1\]"),
    ("poisson", "exp", -np.ones((6, 3)), r"poisson loss needs targets >= 0, got -1\.\.-1"),
])
def test_targets_outside_the_loss_domain_raise_naming_Y(loss, act, Y, match):
    """A negative Poisson target gave a NaN cost (and a fit's NonFiniteError
    blamed an overflow); bce with y = 5 and cce with negative rows gave a
    negative cost, and fit trained on them."""
    net = make("float64", loss=loss, acts=("tanh", act))
    X, _ = good()
    P = net.parameters.copy()
    for method in Y_METHODS:
        with pytest.raises(ValueError, match="Y: the " + match):
            methods(net, X, Y)[method](X, Y)
    with pytest.raises(ValueError, match=r"validation_data\[1\]: the " + match):
        net.fit(X, np.clip(Y, 0, 1), validation_data=(X, Y))
    np.testing.assert_array_equal(net.parameters, P)
    ok = np.clip(Y, 0, 1) if loss == "bce" else np.abs(Y)  # the domain's edges included
    for method in Y_METHODS:
        methods(net, X, ok)[method](X, ok)


def test_integer_labels_are_only_for_cce():
    net = make(loss="sse", acts=("tanh", "identity"))
    X, _ = good()
    with pytest.raises(ValueError, match="Y must be 2-D"):
        net.cost(X, np.array([0, 1, 2, 0, 1, 2]))


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "boolean", {"a": "Int64", "b": "float64"}])
def test_pandas_nullable_numbers_are_taken_as_the_estimators_take_them(dtype):
    """A DataFrame of nullable Int64 / Float64 columns without missing values
    (np.asarray: an object array) was refused, "X must have a real numeric
    dtype, got object", where the estimators took it; Int64 labels stay labels."""
    pd = pytest.importorskip("pandas")
    values = np.array([[1, 0], [2, 1], [0, 0], [4, 1]], dtype=float)
    values = values > 0 if dtype == "boolean" else values
    df = pd.DataFrame(values, columns=["a", "b"]).astype(dtype)
    net = dnnfast.Network([2, 3, 2], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    plain = df.astype(object).to_numpy().astype(float)
    np.testing.assert_array_equal(net.predict(df), net.predict(plain))
    np.testing.assert_array_equal(net.predict(df["a"].to_frame().assign(b=df["b"])), net.predict(plain))
    labels = pd.Series([0, 1, 1, 0], dtype="Int64")
    assert net.cost(df, labels) == net.cost(plain, np.array([0, 1, 1, 0]))


def test_pandas_missing_values_are_refused_by_name_everywhere():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2, 3, 4], "b": [0, 1, None, 1]}, dtype="Int64")
    full = df.fillna(0)
    net = dnnfast.Network([2, 3, 2], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    labels = pd.Series([0, 1, None, 0], dtype="Int64")
    for call, name in [(lambda: net.predict(df), "X"), (lambda: net.fit(df, [0, 1, 1, 0], epochs=1), "X"),
                       (lambda: net.cost(full, labels), "Y"),
                       (lambda: dnnfast.MLPRegressor(max_iter=1).fit(df, [0.0, 1, 1, 0]), "X"),
                       (lambda: dnnfast.MLPClassifier(max_iter=1).fit(full, labels), "y")]:
        with pytest.raises(ValueError, match=rf"^{name} has missing values \(pd.NA\)"):
            call()


# ---------------------------------------------------------------------------
# fit's scalar arguments
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kw,exc,match", [
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(batch_size=-3), ValueError, "batch_size"),
    (dict(batch_size=2.0), TypeError, "batch_size"),
    (dict(batch_size="8"), TypeError, "batch_size"),
    (dict(batch_size=True), TypeError, "batch_size"),
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(epochs=1.5), TypeError, "epochs"),
    (dict(epochs=None), TypeError, "epochs"),
    (dict(learning_rate=0), ValueError, "learning_rate"),
    (dict(learning_rate=-0.1), ValueError, "learning_rate"),
    (dict(learning_rate=float("nan")), ValueError, "learning_rate"),
    (dict(learning_rate=float("inf")), ValueError, "learning_rate"),
    (dict(learning_rate=1.5), ValueError, "learning_rate"),
    (dict(learning_rate="0.1"), TypeError, "learning_rate"),
], ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_bad_fit_arguments_raise_naming_the_argument(kw, exc, match):
    net = make()
    X, Y = good()
    P = net.parameters.copy()
    args = dict(epochs=2, batch_size=2, learning_rate=0.1)
    args.update(kw)
    with pytest.raises(exc, match=match):
        net.fit(X, Y, **args)
    np.testing.assert_array_equal(net.parameters, P)


# ---------------------------------------------------------------------------
# Assigning parameters
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("attr,values,exc,match", [
    ("weights", lambda W: [W[0].T, W[1]], ValueError, r"weights\[0\]: expected shape \(4, 5\)"),
    ("weights", lambda W: [W[0], W[1][:, :2]], ValueError, r"weights\[1\]"),
    ("weights", lambda W: [W[0]], ValueError, "weights: expected 2 arrays"),
    ("weights", lambda W: [W[0], W[1], W[1]], ValueError, "weights: expected 2 arrays"),
    ("weights", lambda W: [W[0][None], W[1]], ValueError, r"weights\[0\]"),
    ("weights", lambda W: [W[0], np.full_like(W[1], np.nan)], ValueError, r"weights\[1\].*NaN"),
    ("weights", lambda W: [W[0], W[1].astype(complex)], TypeError, r"weights\[1\]"),
    ("weights", lambda W: [W[0], W[1].astype(str)], TypeError, r"weights\[1\]"),
    ("weights", lambda W: [W[0].ravel(), W[1]], ValueError, r"weights\[0\]: expected shape \(4, 5\)"),
    ("biases", lambda W: [np.zeros((1, 5)), np.zeros((1, 4))], ValueError, r"biases\[1\]"),
    ("biases", lambda W: [np.zeros(5), np.zeros(4)], ValueError, r"biases\[1\]"),
    ("biases", lambda W: [np.zeros((5, 1)), np.zeros((1, 3))], ValueError, r"biases\[0\]"),
    # Not a list: "'NoneType' object is not iterable", or an array's rows taken as layers.
    ("biases", lambda W: None, TypeError, "biases must be a list of arrays, one per layer, got NoneType"),
    ("weights", lambda W: W[0], TypeError, "weights must be a list of arrays, one per layer, got ndarray"),
    # The flat buffer: it was replaced by whatever was assigned (None, a string,
    # 9 values for 23, float32 for a float64 network), refused only later by the
    # core with pybind11's message.
    ("parameters", lambda W: None, TypeError, "parameters must have a real numeric dtype"),
    ("parameters", lambda W: "x", TypeError, "parameters must have a real numeric dtype"),
    ("parameters", lambda W: np.zeros(22), ValueError, r"parameters: expected shape \(43,\), got \(22,\)"),
    ("parameters", lambda W: np.zeros((1, 43)), ValueError, r"parameters: expected shape \(43,\)"),
    ("parameters", lambda W: np.full(43, np.inf), ValueError, "parameters contains NaN or infinity"),
    ("parameters", lambda W: np.zeros(43, complex), TypeError, "parameters must have a real numeric dtype"),
])
def test_wrong_parameter_assignment_raises_and_leaves_network_unchanged(attr, values, exc, match):
    net = make()
    before = net.parameters.copy()
    W = [w.copy() + 1.0 for w in net.weights]  # different values: a partial write would show
    with pytest.raises(exc, match=match):
        setattr(net, attr, values(W))
    np.testing.assert_array_equal(net.parameters, before)


def test_parameters_assignment_copies_into_the_network_s_buffer():
    """net.parameters = values writes the values into the one flat buffer (the
    core reads it in place; weights and biases are its views), converting them
    to the network's dtype as the weights setter does."""
    net = make()
    P = net.parameters
    values = np.linspace(-1, 1, P.size).astype(np.float32)
    net.parameters = values
    assert net.parameters is P and net.parameters.dtype == np.float64
    np.testing.assert_array_equal(P, values.astype(np.float64))
    np.testing.assert_array_equal(net.weights[0].ravel(), P[:net.weights[0].size])
    net.parameters = list(values[::-1])
    np.testing.assert_array_equal(P, values[::-1].astype(np.float64))


# ---------------------------------------------------------------------------
# The single ops check shapes too (no pointer with a wrong shape reaches a kernel)
# ---------------------------------------------------------------------------

def test_ops_reject_mismatched_shapes():
    Z = np.zeros((3, 4))
    none = np.zeros(0)
    with pytest.raises(ValueError, match="alpha"):
        _core.activation_forward(3, Z, np.zeros(3))
    with pytest.raises(ValueError, match="activation"):
        _core.activation_forward(99, Z, none)
    with pytest.raises(ValueError, match="Z and dA"):
        _core.activation_backward(0, Z, Z, np.zeros((3, 5)), none)
    with pytest.raises(ValueError, match="Z must be 2-D"):
        _core.activation_forward(0, np.zeros(4), none)
    with pytest.raises(ValueError, match="loss"):
        _core.loss_forward(7, Z, Z)
    with pytest.raises(ValueError, match="w"):
        _core.loss_forward(0, Z, Z, np.ones(2))
    with pytest.raises(ValueError, match="Y and Yhat"):
        _core.loss_backward(0, Z, np.zeros((4, 3)), 1.0)
    with pytest.raises(ValueError, match="W"):
        _core.linear_forward(Z, np.zeros((5, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="b"):
        _core.linear_forward(Z, np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="dZ"):
        _core.linear_backward(Z, np.zeros((4, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="Z_prev"):
        _core.dense_backward_input(np.zeros((3, 2)), np.zeros((4, 2)), np.zeros((3, 5)), np.zeros((3, 5)), 0,
                                   none)
    with pytest.raises(ValueError, match="params and grads"):
        _core.sgd_update(np.zeros(3), np.zeros(4), 0.1)
    with pytest.raises(TypeError):
        _core.sgd_update(np.zeros(3, dtype=np.float32), np.zeros(3), 0.1)  # no silent copy: in place only


def test_one_dimensional_biases_are_accepted_as_rows():
    net = make()
    net.biases = [np.arange(5.0), np.arange(3.0)]
    np.testing.assert_array_equal(net.biases[1], [[0.0, 1.0, 2.0]])


def test_core_objects_made_without_init_raise_instead_of_crashing():
    """Class.__new__ without __init__ leaves a _core object with no C++ object
    behind it; every method and property, called with arguments that are
    otherwise valid, then raises TypeError naming __init__ rather than
    running on unconstructed memory (a segfault, or a hang in a lock's wait).
    Run in a fresh interpreter, so a crash or hang fails this test instead of
    killing the run."""
    import json
    import subprocess
    import sys

    code = """
import json
import numpy as np
from dnnfast import _core

calls = {}
for cls, dt in ((_core.Network32, np.float32), (_core.Network64, np.float64)):
    P, X, Y = np.zeros(3, dt), np.zeros((2, 2), dt), np.zeros((2, 1), dt)
    rows, opts = np.arange(2, dtype=np.int64), _core.TrainOptions()
    calls.update({(cls, "layout"): (), (cls, "forward"): (P, X), (cls, "predict"): (P, X),
                  (cls, "predict_as_is"): (P, X, 2), (cls, "cost"): (P, X, Y),
                  (cls, "loss_and_gradient"): (P, X, Y, None, rows, 0.0, P.copy()),
                  (cls, "train_epoch"): (P, X, Y, None, rows, opts),
                  (cls, "gradient_sum"): (P, X, Y, None, rows, P.copy()),
                  (cls, "apply_gradient_sum"): (P, P.copy(), 1.0, opts), (cls, "release_workspace"): (),
                  (cls, "num_params"): None})
L = _core.ModelLock
for name in ("acquire_read", "release_read", "acquire_copy", "acquire_write", "release_write", "step_boundary",
             "__enter__", "__reduce__"):
    calls[(L, name)] = ()
calls[(L, "__exit__")] = (None, None, None)
for name in ("fitting", "reading", "what", "copies", "fits"):
    calls[(L, name)] = None
G = type(_core.ModelLock().copies)
calls[(G, "__enter__")] = ()
calls[(G, "__exit__")] = (None, None, None)

out = {}
for (cls, name), args in calls.items():
    if args is not None:  # a real object takes these arguments (whatever it then makes of them)
        real = cls([2, 1], [0], [0.0], 1) if cls in (_core.Network32, _core.Network64) else None
        if real is not None:
            try:
                getattr(real, name)(*args)
            except (ValueError, RuntimeError):
                pass
    obj = cls.__new__(cls)
    try:
        attr = getattr(obj, name)
        if args is not None:
            attr(*args)
        out[f"{cls.__name__}.{name}"] = "no error"
    except Exception as e:
        out[f"{cls.__name__}.{name}"] = f"{type(e).__name__}: {e}"
out["repr"] = repr(_core.TrainOptions.__new__(_core.TrainOptions))
for cls in (_core.Network32, _core.Network64, L, G):  # every public method and property is called above
    missing = sorted(n for n in vars(cls) if not n.startswith("_") and (cls, n) not in calls)
    out["missing " + cls.__name__] = missing
print(json.dumps(out))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("repr").startswith("TrainOptions(")
    for key in [k for k in out if k.startswith("missing ")]:
        assert out.pop(key) == [], key
    assert len(out) == 2 * 11 + 14 + 2
    for key, got in out.items():
        assert got.startswith("TypeError") and "__init__ was not called" in got, (key, got)


def test_train_options_fields_are_checked_when_set():
    options = _core.TrainOptions()
    with pytest.raises(ValueError, match="optimizer"):
        options.optimizer = 99
    with pytest.raises(ValueError, match="optimizer"):
        options.optimizer = "adamw"
    options.optimizer = "adam"
    assert options.optimizer == [o[1] for o in _core.OPTIMIZERS if o[0] == "adam"][0]
    with pytest.raises(ValueError, match="batch_size"):
        options.batch_size = 0
    assert options.batch_size == 1
