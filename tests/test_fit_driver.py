"""Network.fit's training options (SPEC section 7, issue 17), each against an
independent NumPy loop in float64 built on dnnfast.reference's gradients;
early stopping, callbacks, chunking, checkpoints and resume."""
from __future__ import annotations

import json
import math
import os
import re

import warnings

import numpy as np
import pytest

import dnnfast
from dnnfast import _network_file, reference
from dnnfast._train import driver

BATCH = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(70, 5))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 0.8)
    return X, np.eye(3)[y]


def _net(seed=0):
    return dnnfast.Network([5, 7, 3], ["tanh", "softmax"], loss="cce", dtype="float64", seed=seed)


def _numpy_fit(net, X, Y, epochs, lr, optimizer, momentum=0.9, beta1=0.9, beta2=0.999, epsilon=1e-8,
               weight_decay=0.0, batch=BATCH):
    """scikit-learn's update rules, written out; returns (weights, biases, costs)."""
    Ws = [W.copy() for W in net.weights]
    bs = [b.copy() for b in net.biases]
    acts = [(a, None) for a in net.activations]
    params = Ws + bs
    v = [np.zeros_like(p) for p in params]
    m = [np.zeros_like(p) for p in params]
    s = [np.zeros_like(p) for p in params]
    t = 0
    costs = []
    n = X.shape[0]
    for epoch in range(epochs):
        rate = lr(epoch) if callable(lr) else lr
        total = 0.0
        for b0 in range(0, n, batch):
            Xb, Yb = X[b0:b0 + batch], Y[b0:b0 + batch]
            c, dWs, dbs, _ = reference.gradients(Ws, bs, acts, "cce", Xb, Yb)
            penalty = 0.5 * weight_decay * sum(float((W * W).sum()) for W in Ws)
            total += (c + penalty) * Xb.shape[0]
            grads = [dW + weight_decay * W for dW, W in zip(dWs, Ws)] + list(dbs)
            if optimizer == "adam":
                t += 1
            for k, (p, g) in enumerate(zip(params, grads)):
                if optimizer == "sgd":
                    p -= rate * g
                elif optimizer in ("momentum", "nesterov"):
                    v[k] = momentum * v[k] - rate * g
                    p += (momentum * v[k] - rate * g) if optimizer == "nesterov" else v[k]
                else:
                    m[k] = beta1 * m[k] + (1 - beta1) * g
                    s[k] = beta2 * s[k] + (1 - beta2) * g * g
                    lr_t = rate * np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                    p -= lr_t * m[k] / (np.sqrt(s[k]) + epsilon)
        costs.append(total / n)
    return Ws, bs, costs


def _close(a, b, rtol=1e-12):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(np.abs(b).max(), 1e-300)
    assert np.abs(a - b).max() <= rtol * scale, np.abs(a - b).max() / scale


@pytest.mark.parametrize("optimizer,kw", [
    ("sgd", {}),
    ("momentum", {"momentum": 0.8}),
    ("nesterov", {"momentum": 0.9}),
    ("adam", {}),
    ("adam", {"beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6}),
    ("sgd", {"weight_decay": 1e-2}),
    # plain SGD's L2 step made in place, one row and three rows a step
    ("sgd", {"weight_decay": 1e-2, "batch": 1}),
    ("sgd", {"weight_decay": 3e-2, "batch": 3}),
    ("momentum", {"weight_decay": 3e-3}),
    ("adam", {"weight_decay": 1e-3}),
])
def test_optimizers_match_numpy(data, optimizer, kw):
    X, Y = data
    lr = 0.01 if optimizer == "adam" else 0.1
    net = _net()
    Ws, bs, costs = _numpy_fit(net, X, Y, 4, lr, optimizer, **kw)
    kw = dict(kw)
    batch = kw.pop("batch", BATCH)
    hist = net.fit(X, Y, epochs=4, batch_size=batch, learning_rate=lr, optimizer=optimizer, **kw)
    for got, want in zip(net.weights + net.biases, Ws + bs):
        _close(got, want)
    _close(hist["cost"], costs)


def test_callable_learning_rate_matches_numpy(data):
    X, Y = data
    schedule = lambda epoch: 0.2 / (1 + epoch)  # noqa: E731
    net = _net()
    Ws, bs, costs = _numpy_fit(net, X, Y, 5, schedule, "momentum")
    hist = net.fit(X, Y, epochs=5, batch_size=BATCH, learning_rate=schedule, optimizer="momentum")
    for got, want in zip(net.weights + net.biases, Ws + bs):
        _close(got, want)
    assert hist["lr"] == [schedule(e) for e in range(5)]


def test_default_fit_unchanged(data):
    """Plain SGD with the old arguments: the same bits as the core's epoch loop."""
    X, Y = data
    a, b = _net(), _net()
    a.fit(X, Y, epochs=3, batch_size=8, learning_rate=0.1)
    for _ in range(3):
        b._net.train_epoch(b.parameters, X, Y, None, np.arange(70, dtype=np.int64),
                           dnnfast._core.TrainOptions(learning_rate=0.1, batch_size=8))
    assert np.array_equal(a.parameters, b.parameters)


@pytest.mark.parametrize("batch,optimizer", [(1, "sgd"), (8, "sgd"), (3, "adam"), (None, "nesterov")])
def test_chunking_changes_no_bit(data, monkeypatch, batch, optimizer):
    """A chunk per batch and one chunk per epoch give the same parameters and costs."""
    X, Y = data
    runs = []
    for seconds in (0.0, 1e9):
        monkeypatch.setattr(driver, "CHUNK_SECONDS", seconds)
        net = _net()
        h = net.fit(X, Y, epochs=3, batch_size=batch, learning_rate=0.05, optimizer=optimizer, shuffle=True)
        runs.append((net.parameters.copy(), h["cost"]))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_chunking_changes_no_bit_in_stochastic_windows(monkeypatch, dtype, batch):
    """Plain SGD in small batches on a first W beyond 32 KiB runs in windows
    of _core.stochastic_window_batches(batch) batches (32 rows, or 10 batches
    of 3), and each chunk starts a window: the driver cuts such epochs at
    whole windows, so chunks of one batch and one chunk per epoch give the
    same bits (75 rows: two whole windows and a short one)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((75, 80)).astype(dtype)
    Y = np.eye(3, dtype=dtype)[rng.integers(0, 3, 75)]
    runs = []
    for seconds in (0.0, 1e9):
        monkeypatch.setattr(driver, "CHUNK_SECONDS", seconds)
        net = dnnfast.Network([80, 128, 3], ["relu", "softmax"], loss="cce", dtype=dtype, seed=1)
        h = net.fit(X, Y, epochs=2, batch_size=batch, learning_rate=0.05, shuffle=True, seed=3)
        runs.append((net.parameters.copy(), h["cost"]))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]


def test_a_small_batch_fit_checks_the_memory_of_a_window(monkeypatch):
    """Steps of small batches on a first W beyond 32 KiB go in windows of
    whole batches, up to STOCHASTIC_WINDOW rows: the memory check before the
    fit asks for a window's rows of workspace, not a batch's; larger
    batches, and any batch on a small first W, a batch's."""
    import dnnfast.network as network_module
    asked = []
    monkeypatch.setattr(network_module, "check_memory",
                        lambda need, name, what: asked.append(what() if callable(what) else what))
    rng = np.random.default_rng(2)
    X = rng.standard_normal((70, 80))
    Y = np.eye(3)[rng.integers(0, 3, 70)]
    assert dnnfast._core.STOCHASTIC_WINDOW == 32
    for sizes, batch, rows in (([80, 128, 3], 1, 32), ([80, 128, 3], 3, 30), ([80, 128, 3], 4, 32),
                               ([80, 128, 3], BATCH, BATCH), ([80, 8, 3], 1, 1), ([80, 8, 3], 3, 3)):
        asked.clear()
        net = dnnfast.Network(sizes, ["relu", "softmax"], loss="cce", dtype="float64", seed=1)
        net.fit(X, Y, epochs=1, batch_size=batch, learning_rate=0.1)
        assert any(m.startswith(f"{rows:,} rows at a time") for m in asked), (batch, asked)


def test_validation_and_accuracy(data):
    X, Y = data
    net = _net()
    h = net.fit(X, Y, epochs=2, batch_size=BATCH, learning_rate=0.1, validation_data=(X[:20], Y[:20]),
                metrics=["accuracy"])
    assert h["val_cost"][-1] == pytest.approx(net.cost(X[:20], Y[:20]), rel=1e-12)
    P = net.predict(X)
    assert h["accuracy"][-1] == np.mean(P.argmax(1) == Y.argmax(1))
    assert h["val_accuracy"][-1] == np.mean(P[:20].argmax(1) == Y[:20].argmax(1))


def test_early_stopping_restores_best(data):
    X, Y = data
    Xv, Yv = X[:25] + 0.7, Y[::-1][:25]  # a validation set that stops improving soon
    seen = []

    class Record:
        def on_epoch_end(self, net, epoch, logs):
            seen.append((logs["val_cost"], net.parameters.copy()))

    net = _net()
    h = net.fit(X, Y, epochs=200, batch_size=BATCH, learning_rate=0.3, optimizer="momentum",
                validation_data=(Xv, Yv), early_stopping=True, patience=3, callbacks=[Record()])
    assert len(h["cost"]) < 200
    best = int(np.argmin(h["val_cost"]))
    assert len(h["cost"]) == best + 1 + 3
    assert np.array_equal(net.parameters, seen[best][1])
    net2 = _net()
    net2.fit(X, Y, epochs=200, batch_size=BATCH, learning_rate=0.3, optimizer="momentum",
             validation_data=(Xv, Yv), early_stopping=True, patience=3, restore_best=False)
    assert np.array_equal(net2.parameters, seen[-1][1])


def test_callbacks_stop_and_batch_hook(data):
    X, Y = data
    steps = []

    class Stop:
        def on_batch_end(self, net, step, logs):
            steps.append(step)

        def on_epoch_end(self, net, epoch, logs):
            return epoch == 2

    h = _net().fit(X, Y, epochs=10, batch_size=BATCH, learning_rate=0.1, callbacks=[Stop()])
    assert len(h["cost"]) == 3
    assert steps == sorted(steps) and steps[-1] == 3 * 5  # 5 batches of 16 in 70 rows


def test_resume_in_process_bit_identical(data, tmp_path):
    X, Y = data
    kw = dict(batch_size=8, learning_rate=0.01, optimizer="adam", shuffle=True, weight_decay=1e-3,
              validation_data=(X[:10], Y[:10]), early_stopping=True, monitor="val_cost", patience=50)
    ref = _net()
    h_ref = ref.fit(X, Y, epochs=6, **kw)
    path = tmp_path / "run.npz"
    first = _net()
    first.fit(X, Y, epochs=2, checkpoint=path, **kw)
    loaded = dnnfast.load(path)
    h = loaded.fit(X, Y, epochs=6, checkpoint=path, resume=True, **kw)
    assert np.array_equal(loaded.parameters, ref.parameters)
    assert h["cost"] == h_ref["cost"] and h["val_cost"] == h_ref["val_cost"]
    again = dnnfast.load(path)
    assert np.array_equal(again.parameters, ref.parameters) or kw["early_stopping"]
    with pytest.raises(ValueError, match="learning_rate"):
        _net().fit(X, Y, epochs=6, checkpoint=path, resume=True, **{**kw, "learning_rate": 0.02})


@pytest.mark.parametrize("kw,match", [
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"optimizer": 3}, "optimizer"),
    ({"momentum": 1.0}, "momentum"),
    ({"momentum": "x"}, "momentum"),
    ({"beta1": -0.1}, "beta1"),
    ({"beta2": 1.5}, "beta2"),
    ({"epsilon": 0.0}, "epsilon"),
    ({"weight_decay": -1.0}, "weight_decay"),
    ({"weight_decay": float("nan")}, "weight_decay"),
    ({"learning_rate": "fast"}, "learning_rate"),
    ({"validation_data": np.zeros((3, 5))}, "validation_data"),
    ({"validation_data": (np.zeros((3, 4)), np.zeros((3, 3)))}, "validation_data"),
    ({"metrics": ["f1"]}, "metrics"),
    ({"metrics": "accuracy"}, "metrics"),
    ({"early_stopping": True}, "validation_data"),
    ({"early_stopping": 1}, "early_stopping"),
    ({"monitor": "loss"}, "monitor"),
    ({"patience": 0}, "patience"),
    ({"min_delta": -1}, "min_delta"),
    ({"restore_best": None}, "restore_best"),
    ({"callbacks": object()}, "callbacks"),
    ({"callbacks": [object()]}, "callbacks"),
    ({"progress": "yes"}, "progress"),
    ({"checkpoint": 3}, "checkpoint"),
    ({"resume": True}, "checkpoint"),
])
def test_bad_arguments_are_named(data, kw, match):
    X, Y = data
    with pytest.raises((TypeError, ValueError), match=match):
        _net().fit(X, Y, epochs=1, **kw)


def test_accuracy_needs_softmax_or_sigmoid(data):
    X, Y = data
    net = dnnfast.Network([5, 3], ["identity"], loss="mse", dtype="float64", seed=0)
    with pytest.raises(ValueError, match="softmax or sigmoid"):
        net.fit(X, Y, metrics=["accuracy"])


@pytest.mark.parametrize("bad", [float("nan"), np.longdouble("1e400"), 5.0, -0.1, "x", True])
def test_learning_rate_callable_bad_value(data, bad):
    """A schedule's rate is checked as the core will take it (a longdouble of
    1e400 passed as finite and became infinity) and bounded as a constant
    rate is (5 was taken from a callable, refused as a constant)."""
    X, Y = data
    net = _net()
    with pytest.raises(ValueError, match=r"learning_rate\(1\) must return a number in \[0, 1\]"):
        net.fit(X, Y, epochs=3, learning_rate=lambda e: 0.1 if e == 0 else bad)
    with pytest.raises(ValueError, match=r"learning_rate must be <= 1"):
        net.fit(X, Y, epochs=3, learning_rate=5.0)
    net.fit(X, Y, epochs=2, learning_rate=lambda e: (0.0, np.float32(1.0))[e])  # the bounds themselves


def test_progress_plain_line(data, monkeypatch, capsys):
    import builtins
    real_import = builtins.__import__

    def no_tqdm(name, *a, **k):
        if name == "tqdm":
            raise ImportError("no tqdm")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    X, Y = data
    _net().fit(X, Y, epochs=2, batch_size=BATCH, progress=True, verbose=True)
    captured = capsys.readouterr()
    err = captured.err
    assert "\repoch 2/2" in err and "samples/s" in err
    # Each epoch's line is cleared at its end (as tqdm's leave=False bar): verbose's
    # line on stdout was printed after it, on the same line of a terminal.
    import re
    assert len(re.findall(r"\r {20,}\r", err)) == 2 and err.endswith("\r") and "\n" not in err, repr(err)
    assert captured.out.count("\n") == 2 and captured.out.startswith("epoch 1/2")


def _rewrite(path, out, header_edit=None, drop=(), arrays_edit=None):
    """Copy a model file with its header edited, members dropped and arrays edited."""
    import json
    import zipfile
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(arrays["header"].tobytes().decode())
    if header_edit:
        header_edit(header)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    for k in drop:
        del arrays[k]
    if arrays_edit:
        arrays_edit(arrays)
    with zipfile.ZipFile(out, "w") as zf:
        for k, a in arrays.items():
            with zf.open(k + ".npy", "w") as f:
                np.lib.format.write_array(f, a)


def _as_version1(path, out, header_edit=None):
    """Rewrite a checkpoint as format version 1 wrote it: the history's lists in
    the header (tagged floats), no train_history_* arrays."""
    with np.load(path) as z:
        history = {k[len("train_history_"):]: z[k] for k in z.files if k.startswith("train_history_")}

    def edit(h):
        h["format_version"] = 1
        h["training"]["history"] = {k: [x if np.isfinite(x) else {"float": repr(x)} for x in v.tolist()]
                                    for k, v in history.items()}
        if header_edit:
            header_edit(h)
    _rewrite(path, out, edit, ["train_history_" + k for k in history])


def test_version1_checkpoint_loads_and_resumes(data, tmp_path):
    """Format version 1 held a checkpoint's history in the header: such a file still loads and
    resumes, bit-identical to a run never interrupted, and the resume writes version 2."""
    X, Y = data
    kw = dict(batch_size=8, learning_rate=lambda e: 0.01 / (1 + e), optimizer="adam", shuffle=True,
              validation_data=(X[:10], Y[:10]), metrics=["accuracy"])
    ref = _net()
    h_ref = ref.fit(X, Y, epochs=5, **kw)
    path, old = tmp_path / "run.npz", tmp_path / "old.npz"
    _net().fit(X, Y, epochs=2, checkpoint=path, **kw)
    _as_version1(path, old)
    with np.load(old) as z:
        assert not any(k.startswith("train_history_") for k in z.files)
    loaded = dnnfast.load(old)
    h = loaded.fit(X, Y, epochs=5, checkpoint=old, resume=True, **kw)
    assert np.array_equal(loaded.parameters, ref.parameters)
    assert set(h) == set(h_ref) and all(h[k] == h_ref[k] for k in h if k != "time")
    with np.load(old) as z:
        header = json.loads(z["header"].tobytes())
        assert header["format_version"] == 2 and header["training"]["history"]["cost"] == 5
        np.testing.assert_array_equal(z["train_history_cost"], h["cost"])
        np.testing.assert_array_equal(z["train_history_lr"], h["lr"])


def test_checkpoint_history_is_arrays_not_header(data, tmp_path):
    """A checkpoint's history grew in the JSON header, ~45 bytes an epoch: near 400,000
    epochs a fit stopped at the header's 16 MiB cap, and every epoch re-encoded (and the
    save's check re-parsed) the whole history. It is float64 arrays now; the header
    holds its lengths and stays small however long the run."""
    X, Y = data
    path = tmp_path / "long.npz"
    net = _net()
    net.fit(X, Y, epochs=1, batch_size=8, optimizer="adam", checkpoint=path)
    _, record = _network_file.load_checkpoint(path, dnnfast.Network)
    n = 450_000
    rng = np.random.default_rng(0)
    state = driver.TrainState(net.num_params, net.dtype, "adam", np.random.default_rng(1))
    state.load_record(record)
    state.epoch = n
    state.history["cost"] = rng.random(n).tolist()
    state.history["time"] = rng.random(n).tolist()
    _network_file.save_checkpoint(net, path, state.to_record(record["settings"]))
    with np.load(path) as z:
        assert z["header"].size < 4096
    h = dnnfast.load(path).fit(X, Y, epochs=n + 2, batch_size=8, optimizer="adam", checkpoint=path, resume=True)
    assert len(h["cost"]) == n + 2 and h["cost"][:n] == state.history["cost"]
    _, again = _network_file.load_checkpoint(path, dnnfast.Network)
    assert again["epoch"] == n + 2 and again["history"]["time"][:n] == state.history["time"]


def test_checkpoint_history_arrays_follow_the_lists():
    """The checkpoint's history arrays are appended to as the lists grow (not rebuilt each
    epoch), and rebuilt when a list is replaced or shorter."""
    state = driver.TrainState(4, np.float64, "sgd", np.random.default_rng(0))
    for i in range(100):
        state.history["cost"].append(float(i))
        arrays = state.history_arrays()
        assert arrays["cost"].tolist() == state.history["cost"]
    kept = state.history_arrays()["cost"]
    state.history["cost"].append(100.0)
    assert np.shares_memory(state.history_arrays()["cost"], kept)  # appended in place
    state.history["cost"] = [7.0, 8.0]
    assert state.history_arrays()["cost"].tolist() == [7.0, 8.0]
    state.history["cost"].pop()
    assert state.history_arrays()["cost"].tolist() == [7.0]
    state.history["val_cost"] = [math.nan, math.inf]
    np.testing.assert_array_equal(state.history_arrays()["val_cost"], [math.nan, math.inf])


@pytest.mark.parametrize("optimizer,kw", [("sgd", {}), ("sgd", {"weight_decay": 1e-3}), ("momentum", {}),
                                          ("nesterov", {}), ("adam", {"weight_decay": 1e-3})])
def test_a_step_of_many_rows_in_blocks_is_the_one_call_step_to_round_off(monkeypatch, optimizer, kw):
    """A step of more than two blocks' work runs as the sum of its blocks'
    gradients and one update, with Ctrl-C read between blocks (a full batch
    of 80000 rows took 2.35 s in one call). Blocks of 64 rows here: the full
    batch of 300 rows is 5 blocks, a batch of 150 3; the same numbers to
    round-off, and the same bits on any thread count."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 5))
    Y = np.eye(3)[(X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 0.8)]
    fits = {}
    default = driver.BLOCK_FLOPS
    for blocked in (False, True, "2 threads"):
        monkeypatch.setattr(driver, "BLOCK_FLOPS", 1.0 if blocked else default)
        net = _net()
        steps = driver.LocalSteps(net._net, net.parameters, X, Y, None)
        assert steps.splits_steps(300) == steps.splits_steps(150) == bool(blocked)
        before = dnnfast.get_num_threads()
        dnnfast.set_num_threads(2 if blocked == "2 threads" else 1)
        try:
            h = net.fit(X, Y, epochs=3, learning_rate=0.1, optimizer=optimizer, **kw)
            net.fit(X, Y, epochs=2, batch_size=150, learning_rate=0.1, optimizer=optimizer, **kw)
        finally:
            dnnfast.set_num_threads(before)
        fits[blocked] = (net.parameters.copy(), h["cost"])
    np.testing.assert_allclose(fits[True][0], fits[False][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fits[True][1], fits[False][1], rtol=1e-12)
    assert fits[True][0].tobytes() == fits["2 threads"][0].tobytes()


def test_a_full_batch_that_outgrows_the_caches_goes_in_blocks_of_them():
    """A step's blocks hold at most STEP_BLOCK_BYTES of the core's workspace
    (at least MIN_STEP_BLOCK_ROWS rows), however little work each row is: a
    100000-row full batch of a narrow network in one call computed every
    layer from memory. Blocked, it is the one-call step to round-off."""
    from dnnfast._validation import network_bytes

    sizes = [20, 64, 10]
    row_bytes = network_bytes(sizes, 8)[1]
    rows = driver.step_block_rows(20 * 64 + 64 + 64 * 10 + 10, row_bytes)
    assert rows == max(driver.MIN_STEP_BLOCK_ROWS, driver.STEP_BLOCK_BYTES // row_bytes) < driver.block_rows(2000)
    rng = np.random.default_rng(8)
    n = 2 * rows + 300
    X = rng.normal(size=(n, 20))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int) + (X[:, 2] > 0.8)
    net = dnnfast.Network(sizes, ["relu", "softmax"], loss="cce", dtype="float64", seed=1)
    steps = driver.LocalSteps(net._net, net.parameters, X, np.eye(10)[y], None)
    assert steps.splits_steps(n) and not steps.splits_steps(2 * rows)
    ref = reference.Network(sizes, ["relu", "softmax"], "cce", "float64")
    ref.weights, ref.biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    net.fit(X, y, epochs=3, learning_rate=0.1)
    ref.fit(X, y, epochs=3, learning_rate=0.1)
    for mine, theirs in zip(net.weights + net.biases, ref.weights + ref.biases):
        np.testing.assert_allclose(mine, theirs, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("kw", [dict(optimizer="sgd", beta2=1 - 1e-8), dict(optimizer="sgd", momentum=1 - 1e-8),
                                dict(optimizer="sgd", epsilon=1e39), dict(optimizer="momentum", beta1=1 - 1e-8),
                                dict(optimizer="nesterov", epsilon=1e-50)])
def test_settings_the_optimizer_never_reads_are_not_checked_in_its_dtype(data, kw):
    """The checks in the network's dtype refused, for float32, settings the
    optimizer never reads (sgd's beta2, momentum's epsilon); only what it
    reads is checked. They still must be numbers in range (_check_unit)."""
    X, Y = data
    net = dnnfast.Network([5, 7, 3], ["tanh", "softmax"], loss="cce", dtype="float32", seed=0)
    start = net.parameters.copy()
    net.fit(X, Y, epochs=1, **kw)
    assert not np.array_equal(net.parameters, start)


@pytest.mark.parametrize("where", ["network", "fit seed"])
def test_checkpoint_that_cannot_be_written_is_refused_before_the_first_step(data, tmp_path, where):
    """A generator without a file form (MT19937), the network's or fit's own,
    was found by the first write, after an epoch had changed the weights."""
    X, Y = data
    mt = np.random.Generator(np.random.MT19937(0))
    net = dnnfast.Network([5, 7, 3], ["tanh", "softmax"], loss="cce", seed=mt if where == "network" else 0)
    before = net.parameters.copy()
    path = tmp_path / "ck.npz"
    # named: the network's generator, or fit's seed (the network's own generator was named for both)
    named = "network whose generator is MT19937" if where == "network" else "seed is a MT19937 generator .fit's seed"
    with pytest.raises(ValueError, match=named):
        net.fit(X, Y, epochs=2, batch_size=8, shuffle=True, checkpoint=path, seed=mt if where == "fit seed" else None)
    assert net.parameters.tobytes() == before.tobytes()
    assert not path.exists()


def test_checkpoint_file_members_are_checked(data, tmp_path):
    X, Y = data
    path = tmp_path / "ck.npz"
    _net().fit(X, Y, epochs=2, batch_size=8, optimizer="adam", checkpoint=path, validation_data=(X, Y),
               early_stopping=True)
    with np.load(path) as z:  # NumPy alone reads it
        assert {"train_state1", "train_state2", "train_best_params"} <= set(z.files)
    net, record = _network_file.load_checkpoint(path, dnnfast.Network)
    assert record["epoch"] == 2 and record["optimizer"] == "adam"
    # dnnfast.load keeps no training state (3 times the parameters here) on the Network:
    # only a resume, which reads the file itself, uses it.
    loaded = dnnfast.load(path)
    assert "_checkpoint" not in vars(loaded)
    np.testing.assert_array_equal(loaded.parameters, net.parameters)
    plain = tmp_path / "plain.npz"
    net.save(plain)  # a plain save carries no training state
    with pytest.raises(ValueError, match="without training state"):
        _net().fit(X, Y, epochs=3, batch_size=8, optimizer="adam", checkpoint=plain, resume=True,
                   validation_data=(X, Y), early_stopping=True)
    estimator = tmp_path / "estimator.npz"  # only a Network file is a checkpoint: a clear error, not AttributeError
    dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0).fit(X, Y.argmax(1)).save(estimator)
    with pytest.raises(ValueError, match=r"estimator\.npz.*header\.kind is 'MLPClassifier'; expected 'Network'"):
        _net().fit(X, Y, epochs=3, batch_size=8, optimizer="adam", checkpoint=estimator, resume=True,
                   validation_data=(X, Y), early_stopping=True)
    def history_length(key, n):
        def edit(h):
            h["training"]["history"][key] = n
        return edit

    def history_array(key, values):
        def edit(arrays):
            arrays["train_history_" + key] = np.asarray(values)
        return edit

    # (header edit, members dropped, arrays edit, message)
    cases = [
        (lambda h: h["training"].update(optimizer="rmsprop"), (), None, "optimizer"),
        (lambda h: h["training"].update(epoch=-1), (), None, "epoch"),
        (lambda h: h["training"].update(history={"cost": ["x"]}), (), None, "history"),
        (lambda h: h["training"].update(extra=1), (), None, "unknown field"),
        # The fit's generator is named as itself, not as the network's (header.rng).
        (lambda h: h["training"]["rng"].pop("inc"), (), None, r"header\.training\.rng: missing field\(s\) \['inc'\]"),
        (lambda h: h["training"]["rng"].update(bit_generator="MT19937"), (), None,
         r"header\.training\.rng\.bit_generator must be 'PCG64'"),
        (lambda h: h["training"]["rng"].update(uinteger=-1), (), None, r"header\.training\.rng\.uinteger must lie"),
        (lambda h: h["training"].update(rng=[]), (), None, r"header\.training\.rng must be an object"),
        # The best epoch is 1-based and one the checkpoint has completed (0 and 3 loaded).
        (lambda h: h["training"].update(best_epoch=0), (), None, r"best_epoch must lie in \[1, 2\], got 0"),
        (lambda h: h["training"].update(best_epoch=3), (), None, r"best_epoch must lie in \[1, 2\], got 3"),
        (None, ("train_state2",), None, "missing"),
        (lambda h: h["training"].update(best_params=False), (), None, "unexpected"),
        # Cost and time are appended every epoch; a resumed fit's History went on
        # from lists of different lengths.
        (history_length("cost", 1), (), history_array("cost", [0.5]),
         r"history\.cost must hold one value for each of the 2 epochs"),
        (history_length("time", 3), (), history_array("time", [0.5] * 3), r"history\.time must hold one value"),
        (history_length("val_cost", 3), (), history_array("val_cost", [1.0, 2.0, 3.0]),
         r"history\['val_cost'\] holds more values than the 2 epochs"),
        (history_length("val_cost", -1), (), None, r"history\['val_cost'\] has a negative length"),
        (history_length("cost", 2.0), (), None, r"history\['cost'\] must be a length"),
        # The header's length and the array's disagree; an array without its header entry.
        (None, (), history_array("cost", [0.5] * 3), r"train_history_cost.*shape \(3,\), expected \(2,\)"),
        (None, (), history_array("lr", [0.1]), r"unexpected \['train_history_lr'\]"),
        (None, (), history_array("cost", np.zeros(2, np.float32)), r"train_history_cost.*dtype <f4, expected <f8"),
        # A key names an array: the file's text, repr'd, never raw (terminal escapes;
        # a lone surrogate made the message unwritable to a UTF-8 log).
        (lambda h: h["training"]["history"].update({"\x1b[2J\n\ud800": 5}), (), None,
         re.escape(r"a key must be 1 to 32 of a-z and _, got '\x1b[2J\n\ud800'")),
    ]
    for i, (edit, drop, arrays_edit, match) in enumerate(cases):
        bad = tmp_path / f"bad{i}.npz"
        _rewrite(path, bad, edit, drop, arrays_edit)
        with pytest.raises(ValueError, match=match) as info:
            dnnfast.load(bad)
        assert str(info.value).isprintable()
    # Format version 1 held the history's lists in the header.
    version1 = [
        (lambda h: h["training"]["history"]["cost"].pop(), r"history\.cost must hold one value for each of the 2 "
                                                           r"epochs"),
        (lambda h: h["training"]["history"]["time"].append(0.5), r"history\.time must hold one value"),
        (lambda h: h["training"]["history"].update(val_cost=[1.0, 2.0, 3.0]),
         r"history\['val_cost'\] holds more values than the 2 epochs"),
        # The same names as version 2's: a resume writes version 2, whose first
        # checkpoint refused the name ("cannot save"), after the file had loaded.
        (lambda h: h["training"]["history"].update({"val-F1": [0.5, 0.6]}),
         re.escape(r"header.training.history: a key must be 1 to 32 of a-z and _, got 'val-F1'")),
        (lambda h: h["training"]["history"].update({"\x1b[2J\n\ud800": 5}),
         re.escape(r"a key must be 1 to 32 of a-z and _, got '\x1b[2J\n\ud800'")),
    ]
    for i, (edit, match) in enumerate(version1):
        bad = tmp_path / f"bad_v1_{i}.npz"
        _as_version1(path, bad, edit)
        with pytest.raises(ValueError, match=match) as info:
            dnnfast.load(bad)
        assert str(info.value).isprintable()

    def negative_second_moment(arrays):
        arrays["train_state2"] = arrays["train_state2"].copy()
        arrays["train_state2"][1] = -0.25

    bad = tmp_path / "negative.npz"
    _rewrite(path, bad, arrays_edit=negative_second_moment)
    with pytest.raises(ValueError, match="train_state2.*negative"):
        dnnfast.load(bad)


def test_keyboard_interrupt_between_chunks_keeps_the_step(data, monkeypatch):
    """A SIGINT flag seen after a chunk: KeyboardInterrupt with the history,
    the parameters those of the last completed step (in-process, no signal)."""
    X, Y = data
    monkeypatch.setattr(driver, "CHUNK_SECONDS", 0.0)  # one batch per chunk
    steps = []

    class Interrupt:
        def on_batch_end(self, net, step, logs):
            steps.append(net.parameters.copy())
            if step == 7:  # in epoch 2 (5 batches an epoch)
                import _signal
                import signal
                handler = _signal.getsignal(int(signal.SIGINT))
                handler(signal.SIGINT, None)  # what Ctrl-C does: the driver's handler

    net = _net()
    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(X, Y, epochs=5, batch_size=BATCH, learning_rate=0.1, callbacks=[Interrupt()])
    assert len(info.value.history["cost"]) == 1
    assert np.array_equal(net.parameters, steps[-1])
    import signal
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    net.fit(X, Y, epochs=1)  # the lock is free


def _validation_set(n=1000, seed=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)), np.eye(3)[rng.integers(0, 3, n)]


def test_validation_in_blocks_equals_one_call(data, monkeypatch):
    """The validation pass and the accuracies run in blocks of rows (here 64
    each): the cost equals one call's to round-off, the accuracies exactly."""
    monkeypatch.setattr(driver, "BLOCK_FLOPS", 1.0)  # blocks of block_rows' floor, 64 rows
    X, Y = _validation_set(300, seed=5)
    Xv, Yv = _validation_set()
    net = _net()
    h = net.fit(X, Y, epochs=2, batch_size=BATCH, learning_rate=0.1, validation_data=(Xv, Yv), metrics=["accuracy"])
    assert h["val_cost"][-1] == pytest.approx(net.cost(Xv, Yv), rel=1e-12)
    assert h["accuracy"][-1] == np.mean(net.predict(X).argmax(1) == Y.argmax(1))
    assert h["val_accuracy"][-1] == np.mean(net.predict(Xv).argmax(1) == Yv.argmax(1))


@pytest.mark.parametrize("flops, completed", [(1.0, 1), (driver.BLOCK_FLOPS, 2)])
def test_ctrl_c_in_an_epochs_last_chunk_cuts_a_validation_pass_run_in_blocks(data, monkeypatch, flops, completed):
    """A Ctrl-C during epoch 2's last chunk: a validation pass in several
    blocks (64 rows each here) reads it after its first block, and epoch 2
    counts as not completed, with the parameters of its last step; a pass in
    one block (the default's, for 1000 rows of this network) lets the epoch
    end first, and the fit stops after it."""
    monkeypatch.setattr(driver, "CHUNK_SECONDS", 0.0)  # one batch per chunk: 5 an epoch
    monkeypatch.setattr(driver, "BLOCK_FLOPS", flops)
    X, Y = data
    steps = []

    class Interrupt:
        def on_batch_end(self, net, step, logs):
            steps.append(net.parameters.copy())
            if step == 10:  # epoch 2's last batch
                import _signal
                import signal
                _signal.getsignal(int(signal.SIGINT))(signal.SIGINT, None)  # what Ctrl-C does

    net = _net()
    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(X, Y, epochs=5, batch_size=BATCH, learning_rate=0.1, validation_data=_validation_set(),
                callbacks=[Interrupt()])
    assert len(info.value.history["cost"]) == len(info.value.history["val_cost"]) == completed
    assert len(steps) == 10 and np.array_equal(net.parameters, steps[-1])
    net.fit(X, Y, epochs=1)  # the lock is free


@pytest.mark.parametrize("solver,est_kw,fit_kw", [
    ("adam", {}, {"optimizer": "adam"}),
    ("sgd", {"momentum": 0.9, "nesterovs_momentum": True}, {"optimizer": "nesterov", "momentum": 0.9}),
    ("sgd", {"momentum": 0.8, "nesterovs_momentum": False}, {"optimizer": "momentum", "momentum": 0.8}),
])
def test_network_equals_the_estimator(data, solver, est_kw, fit_kw):
    """Same architecture, initial weights, rows and settings: a Network and an
    MLPClassifier end with the same weights and cost (scikit-learn's alpha is
    weight_decay * batch_size when the batches are full)."""
    import warnings
    X, Y = data
    y = Y.argmax(axis=1)
    alpha, batch = 1e-2, 14  # 70 rows: 5 full batches
    est = dnnfast.MLPClassifier(hidden_layer_sizes=(7,), activation="tanh", solver=solver, alpha=alpha,
                                batch_size=batch, shuffle=False, max_iter=1, warm_start=True, random_state=0,
                                tol=0, n_iter_no_change=100, learning_rate_init=0.01, learning_rate="constant",
                                **est_kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning
        est.fit(X, y)  # its initial weights, one epoch on
        W0, b0 = [c.copy() for c in est.coefs_], [c.copy() for c in est.intercepts_]
        est.max_iter = 3
        est.fit(X, y)  # warm start: from W0 with a fresh optimizer
    net = _net()
    net.weights = W0
    net.biases = [b.reshape(1, -1) for b in b0]
    h = net.fit(X, y, epochs=3, batch_size=batch, learning_rate=0.01, weight_decay=alpha / batch, **fit_kw)
    for got, want in zip(net.weights + net.biases, est.coefs_ + [b.reshape(1, -1) for b in est.intercepts_]):
        _close(got, want)
    _close(h["cost"], est.loss_curve_[-3:])


# -- what a callback returns, and what a fit can write or be told --------------

class _Returns:
    def __init__(self, value):
        self.value = value

    def on_epoch_end(self, net, epoch, logs):
        return self.value


@pytest.mark.parametrize("value", ["no", "False", float("nan"), [0], np.array([True]), 1])
def test_a_callback_stop_that_is_not_a_bool_is_named(data, value):
    """bool("no") is True: such a return stopped the fit after its first epoch."""
    with pytest.raises(TypeError, match=r"callbacks\[1\]\.on_epoch_end must return True \(stop\), False or None"):
        _net().fit(*data, epochs=3, callbacks=[_Returns(None), _Returns(value)])


@pytest.mark.parametrize("value, epochs", [(None, 3), (False, 3), (np.False_, 3), (True, 1), (np.True_, 1)])
def test_a_callback_stops_with_true_only(data, value, epochs):
    assert len(_net().fit(*data, epochs=3, callbacks=[_Returns(value)]).cost) == epochs


def test_a_hook_that_cannot_be_called_is_named_before_training(data):
    class Hooks:
        on_epoch_end = 5

        def on_batch_end(self, net, step, logs):
            pass

    net = _net()
    before = net.parameters.copy()
    with pytest.raises(TypeError, match=r"callbacks\[0\]\.on_epoch_end must be callable, got 5"):
        net.fit(*data, epochs=2, callbacks=[Hooks()])
    np.testing.assert_array_equal(net.parameters, before)


@pytest.mark.parametrize("arg", ["epochs", "patience"])
def test_counts_a_checkpoint_cannot_store_are_refused(data, arg):
    """The file stores them as int64: epochs=10**30 wrote a checkpoint dnnfast.load refused."""
    kw = dict(epochs=2, early_stopping=True, monitor="cost")
    kw[arg] = 2**63
    with pytest.raises(ValueError, match=f"{arg} must be at most {2**63 - 1}"):
        _net().fit(*data, **kw)


@pytest.mark.parametrize("name, value", [("sizes", [5, 3]), ("dtype", np.dtype("float32")), ("loss", "sse"),
                                         ("activations", ["relu", "softmax"]), ("fused", False)])
def test_what_a_network_is_made_of_cannot_be_reassigned(tmp_path, name, value):
    net = _net()
    with pytest.raises(AttributeError, match=f"{name} is fixed when the network is made"):
        setattr(net, name, value)
    net.save(tmp_path / "m.npz")
    assert dnnfast.load(tmp_path / "m.npz").sizes == [5, 7, 3]


def test_a_checkpoint_keeps_the_last_finite_epoch(data, tmp_path):
    """Going on past a NaN (on_nonfinite="warn") wrote every later epoch's NaN
    parameters over the checkpoint, which dnnfast.load then refused."""
    X, Y = data
    path = tmp_path / "cp.npz"
    net = dnnfast.Network([5, 8, 3], ["relu", "softmax"], loss="cce", dtype="float64", seed=0)
    with pytest.warns(dnnfast.NonFiniteWarning):
        history = net.fit(X * 1e150, Y, epochs=4, checkpoint=path, on_nonfinite="warn", learning_rate=1.0,
                          optimizer="momentum")
    finite = [c for c in history.cost if np.isfinite(c)]
    assert 0 < len(finite) < 4
    saved = dnnfast.load(path)
    assert np.isfinite(saved.parameters).all()


def test_resume_refuses_a_checkpoint_with_another_activation_parameter(data, tmp_path):
    path = tmp_path / "cp.npz"
    dnnfast.Network([5, 7, 3], ["leaky_relu", "softmax"], dtype="float64", seed=0).fit(
        *data, epochs=2, checkpoint=path)
    other = dnnfast.Network([5, 7, 3], [("leaky_relu", {"alpha": 0.3}), "softmax"], dtype="float64", seed=0)
    with pytest.raises(ValueError, match=r"resume: the checkpoint .* has the activations \[\('leaky_relu', 0\.\d+\)"):
        other.fit(*data, epochs=3, checkpoint=path, resume=True)


def test_a_fit_from_inside_its_own_callback_is_refused(data):
    """The model lock refuses a second fit from another thread; one from this
    fit's own callback ran and left the outer fit's state out of step."""
    class Nested:
        def on_epoch_end(self, net, epoch, logs):
            net.fit(*data, epochs=1)

    net = _net()
    with pytest.raises(RuntimeError, match="fit was called from inside a fit of the same network"):
        net.fit(*data, epochs=2, callbacks=[Nested()])
    assert len(net.fit(*data, epochs=2).cost) == 2  # and the network fits again afterwards


def test_an_epsilon_that_rounds_to_zero_in_float32_is_refused(data):
    net = dnnfast.Network([5, 7, 3], ["tanh", "softmax"], loss="cce", dtype="float32", seed=0)
    with pytest.raises(ValueError, match=r"epsilon must be at least 1\.17549e-38 for a float32 network, got 1e-50"):
        net.fit(*data, epochs=1, optimizer="adam", epsilon=1e-50)
    assert len(net.fit(*data, epochs=1, optimizer="adam", epsilon=1e-30).cost) == 1


@pytest.mark.parametrize("name, exc", [("a" * 300 + ".npz", OSError), ("/proc/self/cp.npz", OSError)])
def test_a_checkpoint_that_cannot_be_written_is_refused_before_training(data, tmp_path, name, exc):
    """Found at the first epoch's end, with the parameters already moved."""
    if name.startswith("/proc") and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    path = name if name.startswith("/") else str(tmp_path / name)
    net = _net()
    before = net.parameters.copy()
    with pytest.raises(exc):
        net.fit(*data, epochs=2, checkpoint=path)
    np.testing.assert_array_equal(net.parameters, before)


def test_validation_rows_that_overflow_the_dtype_are_said(data):
    """history.val_cost was NaN in silence (net.cost on the same rows raises)."""
    X, Y = data
    Xv = np.full((10, 5), 3e38, np.float32)
    Xv[:, 1] = -3e38
    net = dnnfast.Network([5, 7, 3], ["relu", "softmax"], loss="cce", dtype="float32", seed=0)
    with pytest.raises(ValueError, match="validation_data: the cost overflowed to NaN or infinity in float32 in epoch 1"):
        net.fit(X, Y, epochs=2, validation_data=(Xv, Y[:10]))


def test_validation_targets_of_another_length_name_validation_data():
    net = _net()
    X = np.zeros((10, 5))
    with pytest.raises(ValueError, match=r"validation_data\[1\] has 9 labels but validation_data\[0\] has 10 rows"):
        net.fit(X, np.zeros(10, dtype=np.int64), epochs=1, validation_data=(X, np.zeros(9, dtype=np.int64)))


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_each_fit_starts_a_fresh_optimizer_state(data, optimizer):
    """As documented (Network.fit, README): a second fit goes on from the
    parameters with no velocity / moments and t = 0 (as the NumPy update
    rules from those parameters), not with the first fit's state."""
    X, Y = data
    lr = 0.01 if optimizer == "adam" else 0.1
    net = _net()
    net.fit(X, Y, epochs=2, batch_size=BATCH, learning_rate=lr, optimizer=optimizer)
    Ws, bs, _ = _numpy_fit(net, X, Y, 2, lr, optimizer)  # from the parameters after the first fit, fresh state
    net.fit(X, Y, epochs=2, batch_size=BATCH, learning_rate=lr, optimizer=optimizer)
    for got, want in zip(net.weights + net.biases, Ws + bs):
        _close(got, want)


@pytest.mark.parametrize("kw,match", [
    ({"momentum": float("nan")}, r"momentum must lie in \[0, 1\), got nan"),
    ({"beta1": float("inf")}, r"beta1 must lie in \[0, 1\), got inf"),
    ({"weight_decay": float("inf")}, "weight_decay must be a finite number >= 0, got inf"),
    ({"min_delta": float("nan")}, "min_delta must be a finite number >= 0, got nan"),
])
def test_a_nan_or_infinite_setting_is_a_value_error(data, kw, match):
    """A NaN or an infinity is a number of the wrong value, not of the wrong
    type: it was a TypeError ("must be a number, got nan")."""
    X, Y = data
    with pytest.raises(ValueError, match=match):
        _net().fit(X, Y, epochs=1, **kw)


def test_a_weight_decay_infinite_in_float32_is_refused_before_training(data):
    """1e39 is infinite in float32: the fit ended in a NonFiniteError that
    advised a lower learning rate and scaled data."""
    X, Y = data
    net = dnnfast.Network([5, 7, 3], ["tanh", "softmax"], loss="cce", dtype="float32", seed=0)
    before = net.parameters.copy()
    with pytest.raises(ValueError, match=r"weight_decay must be at most 3\.40282e\+38 for a float32 network"):
        net.fit(X, Y, epochs=1, weight_decay=1e39)
    np.testing.assert_array_equal(net.parameters, before)


@pytest.mark.parametrize("kw,match", [
    (dict(optimizer="adam", beta2=1 - 1e-8), r"beta2 must be below 1 in a float32 network's numbers, where 0\.99999999 rounds"),
    (dict(optimizer="adam", beta1=1 - 1e-8), "beta1 must be below 1 in a float32"),
    (dict(optimizer="momentum", momentum=1 - 1e-8), "momentum must be below 1 in a float32"),
    (dict(optimizer="adam", epsilon=1e39), r"epsilon must be at most 3\.40282e\+38 for a float32 network"),
])
def test_optimizer_settings_that_round_to_1_or_inf_in_float32_are_refused(data, kw, match):
    """beta2 = 1 - 1e-8 is 1 in float32: Adam's step size was 0 (a fit that
    trained nothing, in silence); beta1 so, a division by zero (a NaN blamed
    on the data); epsilon 1e39 infinite (no update, and NumPy's overflow
    warning from the check). float64 takes them."""
    X, Y = data
    net = dnnfast.Network([5, 7, 3], ["tanh", "softmax"], loss="cce", dtype="float32", seed=0)
    before = net.parameters.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=match):
            net.fit(X, Y, epochs=1, **kw)
    np.testing.assert_array_equal(net.parameters, before)
    if "epsilon" in kw:
        return
    net64 = dnnfast.Network([5, 7, 3], ["tanh", "softmax"], loss="cce", dtype="float64", seed=0)
    start = net64.parameters.copy()
    net64.fit(X, Y, epochs=2, **kw)
    assert not np.array_equal(net64.parameters, start)


@pytest.mark.parametrize("where", ["network", "fit seed"])
def test_refused_resume_leaves_the_network_unchanged(data, tmp_path, where):
    """A checkpoint's generator state going into a generator of another kind
    was refused by NumPy's own message after the parameters had been replaced
    by the checkpoint's."""
    X, Y = data
    path = tmp_path / "ck.npz"
    _net(1).fit(X, Y, epochs=2, batch_size=8, checkpoint=path, seed=3 if where == "fit seed" else None)
    other = np.random.Generator(np.random.Philox(5))
    net = _net(other if where == "network" else 7)
    before = net.parameters.copy()
    named = "network whose generator is Philox" if where == "network" else "seed is a Philox generator .fit's seed"
    with pytest.raises(ValueError, match=named):
        net.fit(X, Y, epochs=4, batch_size=8, checkpoint=path, resume=True,
                seed=other if where == "fit seed" else None)
    assert net.parameters.tobytes() == before.tobytes()


def test_early_stopping_on_cost_restores_the_parameters_the_best_cost_was_measured_with():
    """history["cost"][e] is measured before epoch e's updates (a full batch:
    the cost of the epoch's starting parameters); the parameters kept were
    those after them, so a diverging run returned the first diverged model."""
    rng = np.random.default_rng(0)
    X = 2 * rng.normal(size=(200, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]])
    net = dnnfast.Network([3, 1], ["identity"], loss="mse", dtype="float64", seed=0)
    h = net.fit(X, Y, epochs=30, learning_rate=lambda e: 0.1 if e < 5 else 1.0, early_stopping=True,
                monitor="cost", patience=3, restore_best=True)
    best = int(np.argmin(h["cost"]))
    assert best + 1 < len(h["cost"])  # it diverged after the best epoch
    assert net.cost(X, Y) == h["cost"][best]


def test_resume_refuses_epochs_below_the_checkpoints(data, tmp_path):
    """The checkpoint's longer run came back, silently, as a shorter one's."""
    X, Y = data
    path = tmp_path / "ck.npz"
    _net().fit(X, Y, epochs=5, batch_size=8, checkpoint=path)
    net = _net()
    before = net.parameters.copy()
    with pytest.raises(ValueError, match=r"epochs=2 is below the 5 epochs the checkpoint"):
        net.fit(X, Y, epochs=2, batch_size=8, checkpoint=path, resume=True)
    assert net.parameters.tobytes() == before.tobytes()
    h = net.fit(X, Y, epochs=5, batch_size=8, checkpoint=path, resume=True)  # as many: nothing left to run
    assert len(h["cost"]) == 5


class _StopAt:
    def __init__(self, n):
        self.n = n

    def on_epoch_end(self, net, epoch, logs):
        return epoch + 1 >= self.n


def test_resume_after_a_callback_stop_goes_on_to_epochs(data, tmp_path):
    """A run a callback had stopped (a time budget) resumed to nothing, silently;
    it goes on to epochs, as the same run with that callback never stopping."""
    X, Y = data
    path = tmp_path / "ck.npz"
    kw = dict(batch_size=8, shuffle=True, optimizer="adam")
    _net().fit(X, Y, epochs=6, checkpoint=path, callbacks=[_StopAt(2)], **kw)
    net = _net()
    h = net.fit(X, Y, epochs=6, checkpoint=path, resume=True, **kw)
    ref = _net()
    href = ref.fit(X, Y, epochs=6, **kw)
    assert h["cost"] == href["cost"]
    assert net.parameters.tobytes() == ref.parameters.tobytes()


def test_resume_after_early_stopping_stays_stopped(data, tmp_path):
    """Early stopping's patience ran out: the resumed run does not go on."""
    X, Y = data
    path = tmp_path / "ck.npz"
    kw = dict(batch_size=8, learning_rate=0.5, early_stopping=True, monitor="cost", patience=1, min_delta=10.0)
    h0 = _net().fit(X, Y, epochs=8, checkpoint=path, **kw)
    assert len(h0["cost"]) == 2
    h = _net().fit(X, Y, epochs=8, checkpoint=path, resume=True, **kw)
    assert h["cost"] == h0["cost"]


@pytest.mark.parametrize("first,second,match", [
    ({}, {"seed": 3}, r"resume: seed is not None must be as when the checkpoint .* was written: it was False, "
                      r"this fit has True"),
    ({}, {"validation_data": "data"}, r"resume: validation_data is not None must be as when .* it was False"),
    ({"batch_size": None}, {"batch_size": None, "rows": 40},
     r"resume: batch_size must be as when .* it was 70 rows a step, this fit has batch_size=None \(40 rows a step\)"),
    ({"batch_size": 8}, {"batch_size": 16}, r"resume: batch_size must be as when .* it was 8 rows a step, this fit "
                                             r"has 16 rows a step"),
])
def test_resume_refusals_name_fits_arguments(data, tmp_path, first, second, match):
    """They named the fingerprint's internal settings (seeded, validation), and
    a batch_size=None given both times as batch_size=70 and 40."""
    X, Y = data
    path = tmp_path / "ck.npz"
    _net().fit(X, Y, epochs=2, checkpoint=path, **first)
    kw = dict(second)
    rows = kw.pop("rows", X.shape[0])
    if kw.get("validation_data") == "data":
        kw["validation_data"] = (X, Y)
    with pytest.raises(ValueError, match=match):
        _net().fit(X[:rows], Y[:rows], epochs=4, checkpoint=path, resume=True, **kw)


class _EpochHook:
    def on_epoch_end(self, net, epoch, logs):
        return False


class _TwoArgs:
    def on_epoch_end(self, net, epoch):
        return False


class _BatchTwoArgs:
    def on_batch_end(self, net, logs):
        pass


class _Flexible:
    def on_epoch_end(self, *args, **kwargs):
        return False

    on_batch_end = print  # a builtin (its signature readable or not): taken


@pytest.mark.parametrize("cb,match", [
    (_EpochHook, r"callbacks\[0\]\.on_epoch_end must take the call on_epoch_end\(net, epoch, logs\).*pass an instance"),
    (_TwoArgs(), r"callbacks\[0\]\.on_epoch_end must take the call on_epoch_end\(net, epoch, logs\).*\(net, epoch\)"),
    (_BatchTwoArgs(), r"callbacks\[0\]\.on_batch_end must take the call on_batch_end\(net, step, logs\)"),
])
def test_callback_hooks_that_cannot_take_the_call_are_refused_at_the_start(data, cb, match):
    """A class passed for its instance, or a hook of the wrong arity, trained an
    epoch and then failed with Python's TypeError."""
    X, Y = data
    net = _net()
    before = net.parameters.copy()
    with pytest.raises(TypeError, match=match):
        net.fit(X, Y, epochs=2, batch_size=8, callbacks=[cb])
    assert net.parameters.tobytes() == before.tobytes()


def test_callback_hooks_with_flexible_or_unreadable_signatures_are_taken(data, capsys):
    X, Y = data
    _net().fit(X, Y, epochs=1, batch_size=8, callbacks=[_Flexible()])


def test_batch_logs_cost_includes_the_penalty_and_each_hook_has_its_own_logs(data):
    """on_batch_end's cost left out the weight-decay penalty that the epoch's
    includes; and its logs dict was the one the progress bar read after the
    user's hooks: one that popped "rows" broke fit with a KeyError."""
    X, Y = data
    seen = []

    class Seen:
        def on_batch_end(self, net, step, logs):
            seen.append(dict(logs))

    class Pop:
        def on_batch_end(self, net, step, logs):
            logs.pop("rows")
            logs.pop("cost")

    h = _net().fit(X, Y, epochs=1, batch_size=8, weight_decay=0.5, callbacks=[Pop(), Seen()], progress=True)
    assert seen[-1]["rows"] == X.shape[0]
    assert seen[-1]["cost"] == pytest.approx(h["cost"][0], rel=1e-12)


@pytest.mark.parametrize("lr,match", [
    (1e-46, r"learning_rate must be at least 1\.17549e-38 for a float32 network, got 1e-46"),
    (1e-40, r"learning_rate must be at least 1\.17549e-38 for a float32 network, got 1e-40"),
    (lambda e: 0.1 if e < 1 else 1e-40, r"learning_rate\(1\) must return 0 or at least 1\.17549e-38 for a float32"),
])
def test_a_learning_rate_that_is_zero_in_the_networks_dtype_is_refused(data, lr, match):
    """It was taken, and trained nothing (epsilon is refused so already)."""
    X, Y = data
    net = dnnfast.Network([5, 7, 3], ["tanh", "softmax"], loss="cce", dtype="float32", seed=0)
    with pytest.raises(ValueError, match=match):
        net.fit(X, Y, epochs=3, batch_size=8, learning_rate=lr)
    net.fit(X, Y, epochs=2, batch_size=8, learning_rate=lambda e: 0.0)  # an epoch without updates, asked for


def test_a_fit_stopped_in_its_first_epoch_resumes_bit_identical(tmp_path):
    """A Ctrl-C in the first epoch left no checkpoint: the same call with
    resume=True then started afresh from the parameters the stopped epoch had
    left, with its generator advanced (1.8e-1 from an uninterrupted run). The
    starting point is written before the first step."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)

    def make():
        return dnnfast.Network([6, 16, 2], ["relu", "softmax"], loss="cce", dtype="float64", seed=3)

    kw = dict(epochs=3, batch_size=8, learning_rate=0.05, shuffle=True)
    whole = make()
    whole.fit(X, y, **kw)

    class StopInFirstEpoch:
        def on_epoch_end(self, net, epoch, logs):
            return False

        def on_batch_end(self, net, step, logs):  # (called a chunk of steps at a time)
            if 0 < step < 38:  # 38 steps an epoch: within the first
                raise KeyboardInterrupt

    path = tmp_path / "cp.npz"
    cut = make()
    with pytest.raises(KeyboardInterrupt):
        cut.fit(X, y, checkpoint=path, resume=True, callbacks=[StopInFirstEpoch()], **kw)
    assert path.exists()
    cut.fit(X, y, checkpoint=path, resume=True, **kw)  # the same call again
    np.testing.assert_array_equal(cut.parameters, whole.parameters)
