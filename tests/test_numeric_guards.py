"""Training that produces NaN or infinity stops with dnnfast.NonFiniteError
naming the epoch and the first non-finite layer, with the parameters from
before that epoch put back; on_nonfinite="warn" warns once and goes on,
"ignore" checks nothing. The same for the estimators' sgd, adam and lbfgs."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import dnnfast
from dnnfast import MLPClassifier, MLPRegressor, NonFiniteError, NonFiniteWarning
from dnnfast._guards import locate_nonfinite


def diverging_data():
    """A regression that plain SGD at learning_rate=1 cannot survive."""
    rng = np.random.default_rng(0)
    X = 1e3 * rng.standard_normal((50, 4))
    return X, 1e3 * X[:, :1]


def make(dtype="float32"):
    return dnnfast.Network([4, 8, 6, 1], ["relu", "relu", "identity"], loss="sse", dtype=dtype, seed=0)


def test_nonfinite_error_is_a_value_error_exported_at_top_level():
    assert issubclass(NonFiniteError, ValueError)
    assert issubclass(NonFiniteWarning, RuntimeWarning)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_diverging_fit_raises_naming_epoch_and_layer_and_keeps_last_good_weights(dtype):
    X, Y = diverging_data()
    net = make(dtype)
    # the epoch that fails, found by running the same training epoch by epoch
    probe, snapshots = make(dtype), []
    for epoch in range(1, 50):
        snapshots.append(probe.parameters.copy())
        probe.fit(X, Y, epochs=1, learning_rate=1.0, on_nonfinite="ignore")
        if not np.all(np.isfinite(probe.parameters)):
            break
    else:
        pytest.fail("the data did not make training diverge")
    with pytest.raises(NonFiniteError, match=rf"epoch {epoch}, first in layer \d \((W|b)\)") as info:
        net.fit(X, Y, epochs=50, learning_rate=1.0)
    err = info.value
    assert err.epoch == epoch and err.layer in (1, 2, 3) and err.where in ("W", "b")
    # the parameters of the start of the failing epoch, and the history before it
    np.testing.assert_array_equal(net.parameters, snapshots[-1])
    assert len(err.history.cost) == epoch - 1 and np.all(np.isfinite(err.history.cost))
    # and the first non-finite layer is the one named
    layer, where = locate_nonfinite(net._layout, probe.parameters)
    assert (err.layer, err.where) == (layer, where)


def test_warn_mode_warns_once_and_goes_on():
    X, Y = diverging_data()
    net = make()
    with pytest.warns(NonFiniteWarning, match="epoch") as record:
        h = net.fit(X, Y, epochs=10, learning_rate=1.0, on_nonfinite="warn")
    assert len([w for w in record if issubclass(w.category, NonFiniteWarning)]) == 1
    assert len(h.cost) == 10 and not np.all(np.isfinite(h.cost))


def test_ignore_mode_checks_nothing():
    X, Y = diverging_data()
    net = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = net.fit(X, Y, epochs=10, learning_rate=1.0, on_nonfinite="ignore")
    assert len(h.cost) == 10 and not np.all(np.isfinite(net.parameters))


@pytest.mark.parametrize("mode", ["warn", "ignore"])
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_warn_and_ignore_go_on_with_accuracy_metrics(mode, output):
    """metrics=["accuracy"] does not turn a diverging fit that is told to go
    on into predict's error: the accuracy of non-finite parameters is NaN, as
    the cost, and the fit runs all its epochs."""
    rng = np.random.default_rng(0)
    X = 1e6 * rng.normal(size=(30, 3))
    y = rng.integers(0, 2, 30)
    Y = np.eye(2)[y] if output == "softmax" else y[:, None].astype(float)
    loss = "cce" if output == "softmax" else "bce"
    net = dnnfast.Network([3, 16, 2 if output == "softmax" else 1], ["relu", output], loss=loss, dtype="float32",
                          seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonFiniteWarning)
        h = net.fit(X, Y, epochs=4, batch_size=5, learning_rate=1.0, on_nonfinite=mode, metrics=["accuracy"],
                    validation_data=(X[:10], Y[:10]))
    assert len(h["cost"]) == len(h["accuracy"]) == len(h["val_accuracy"]) == 4
    assert not np.all(np.isfinite(net.parameters))
    assert math.isnan(h["accuracy"][-1]) and math.isnan(h["val_accuracy"][-1])


def test_nonfinite_parameters_before_training_are_named_as_epoch_0():
    X, Y = diverging_data()
    net = make()
    net.parameters[net._layout[1]["b_offset"]] = np.inf  # written past the checked setters
    before = net.parameters.copy()
    with pytest.raises(NonFiniteError, match=r"before training, first in layer 2 \(b\)") as info:
        net.fit(X / 1e3, Y / 1e6, epochs=1)
    assert info.value.epoch == 0
    np.testing.assert_array_equal(net.parameters, before)


def test_finite_training_is_untouched_by_the_guard():
    """The guard changes nothing when all is well: same parameters as unguarded."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 4))
    Y = X[:, :1] - X[:, 1:2]
    a, b = make("float64"), make("float64")
    ha = a.fit(X, Y, epochs=5, batch_size=7, learning_rate=0.05, shuffle=True)
    hb = b.fit(X, Y, epochs=5, batch_size=7, learning_rate=0.05, shuffle=True, on_nonfinite="ignore")
    np.testing.assert_array_equal(a.parameters, b.parameters)
    assert ha.cost == hb.cost


def test_locate_names_the_first_layer_whose_activations_overflow():
    """Finite parameters, but Z of layer 2 overflows float32: the layer is found
    by a forward pass."""
    net = dnnfast.Network([2, 3, 3, 1], ["identity", "identity", "identity"], loss="sse", seed=0)
    net.weights = [np.full((2, 3), 1e20), np.full((3, 3), 1e20), np.ones((3, 1))]
    X = np.ones((5, 2), dtype=np.float32)
    assert np.all(np.isfinite(net.parameters))
    assert locate_nonfinite(net._layout, net.parameters, net._net.forward, X) == (2, "Z")
    with pytest.raises(NonFiniteError, match=r"epoch 1") as info:
        net.fit(X, np.ones((5, 1)), epochs=1, learning_rate=1e-3)
    assert info.value.layer is not None


# ---------------------------------------------------------------------------
# The estimators
# ---------------------------------------------------------------------------

def diverging_regression():
    rng = np.random.default_rng(0)
    X = 1e3 * rng.standard_normal((60, 4))
    return X, 1e9 * X.sum(axis=1)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_sgd_divergence_raises_and_keeps_the_weights_of_the_epoch_before():
    X, y = diverging_regression()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1.0, max_iter=30, random_state=0)
    with pytest.raises(NonFiniteError, match=r"non-finite parameter weights in epoch (\d+), first in layer") as info:
        MLPRegressor(**kw).fit(X, y)
    epoch = info.value.epoch
    # A run stopped just before that epoch has the weights the failed run keeps.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = MLPRegressor(**{**kw, "max_iter": epoch - 1}).fit(X, y)
    est = MLPRegressor(**kw)
    with pytest.raises(NonFiniteError):
        est.fit(X, y)
    assert est.n_iter_ == epoch - 1
    for a, b in zip(est.coefs_ + est.intercepts_, ok.coefs_ + ok.intercepts_):
        assert np.all(np.isfinite(a))
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_estimator_warn_and_ignore_go_on():
    X, y = diverging_regression()
    kw = dict(hidden_layer_sizes=(8,), solver="sgd", learning_rate_init=1.0, max_iter=8, random_state=0)
    with pytest.warns(NonFiniteWarning):
        est = MLPRegressor(on_nonfinite="warn", **kw).fit(X, y)
    assert est.n_iter_ == 8
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonFiniteWarning)
        MLPRegressor(on_nonfinite="ignore", **kw).fit(X, y)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_adam_partial_fit_divergence_raises_and_resets_the_optimizer():
    X, y = diverging_regression()
    X, y = X.astype(np.float32), y.astype(np.float32)  # a float32 model: Adam's steps of 1e30 overflow it
    est = MLPRegressor(hidden_layer_sizes=(8,), solver="adam", learning_rate_init=1e30, random_state=0)
    with pytest.raises(NonFiniteError):
        for _ in range(200):
            est.partial_fit(X, y)
    assert all(np.all(np.isfinite(c)) for c in est.coefs_ + est.intercepts_)
    assert "_optimizer" not in est.__dict__  # its moments held the non-finite values


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lbfgs_overflowing_loss_raises_naming_the_iteration():
    rng = np.random.default_rng(0)
    X = 1e200 * rng.standard_normal((30, 3))
    y = 1e100 * rng.standard_normal(30)
    est = MLPRegressor(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=20, random_state=0)
    with pytest.raises(NonFiniteError, match=r"iteration \d+"):
        est.fit(X, y)
    assert all(np.all(np.isfinite(c)) for c in est.coefs_ + est.intercepts_)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_classifier_divergence_is_a_value_error_with_scikit_learns_message():
    """Code that catches scikit-learn's ValueError keeps working."""
    rng = np.random.default_rng(0)
    X = 1e30 * rng.standard_normal((40, 3))
    y = np.arange(40) % 2
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", learning_rate_init=1.0, momentum=0.9, max_iter=20,
                      random_state=0).fit(X, y)


def test_nan_written_by_a_callback_is_not_blamed_on_training():
    """A callback wrote NaN at the end of epoch 1: the snapshot of epoch 2 holds
    it, so the message must not claim those parameters are whole again, nor
    advise a lower learning rate."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    Y = X[:, :1] - X[:, 1:2]

    class WritesNaN:
        def on_epoch_end(self, net, epoch, logs):
            if epoch == 0:
                net.parameters[0] = np.nan

    with pytest.raises(NonFiniteError, match=r"in epoch 2, .*held NaN or infinity before epoch 2 already") as info:
        make("float64").fit(X, Y, epochs=3, learning_rate=0.01, callbacks=[WritesNaN()])
    assert "learning_rate" not in str(info.value)


def test_nan_written_before_the_fit_asks_for_finite_values_not_a_lower_rate():
    X, Y = diverging_data()
    net = make()
    net.parameters[0] = np.nan
    with pytest.raises(NonFiniteError, match=r"the parameters hold NaN or infinity before training") as info:
        net.fit(X / 1e3, Y / 1e6, epochs=1)
    assert "learning_rate" not in str(info.value)


@pytest.mark.parametrize("stop", [False, True])
def test_nan_written_by_a_callback_after_the_last_check_is_not_returned_silently(stop):
    """A callback wrote NaN in the last epoch's on_epoch_end (or as it stopped
    the fit): no later epoch checks it, so the end of the fit does."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4))
    Y = X[:, :1] - X[:, 1:2]
    last = 0 if stop else 2

    class WritesNaN:
        def on_epoch_end(self, net, epoch, logs):
            if epoch == last:
                net.parameters[3] = np.nan
                return stop

    net = make("float64")
    with pytest.raises(NonFiniteError, match=rf"after the callbacks of epoch {last + 1}, first in layer 1 \(W\) "
                                             r"\(written into them by a callback") as info:
        net.fit(X, Y, epochs=3, learning_rate=0.01, callbacks=[WritesNaN()])
    assert "learning_rate" not in str(info.value) and info.value.epoch == last + 1
    assert np.isnan(net.parameters[3])  # left as the callback wrote them
    with pytest.warns(NonFiniteWarning, match=rf"after the callbacks of epoch {last + 1}"):
        make("float64").fit(X, Y, epochs=3, learning_rate=0.01, callbacks=[WritesNaN()], on_nonfinite="warn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = make("float64").fit(X, Y, epochs=3, learning_rate=0.01, callbacks=[WritesNaN()], on_nonfinite="ignore")
    assert len(h["cost"]) == last + 1
