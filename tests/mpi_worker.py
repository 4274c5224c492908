"""Run by test_distributed.py under ``mpiexec -n R``: trains data-parallel on
every rank's shard and, on rank 0, the same models in one process on all the
rows; rank 0 saves everything (each rank's parameters, the single-process
parameters, the error each rank raised) to the .npz named on the command
line. The comparisons are made by the test, not here.
"""
import json
import sys
import warnings

import numpy as np
from mpi4py import MPI

import dnnfast
from dnnfast.distributed import Context

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
out = {}
errors = {}


def shard_bounds(n):
    """Unequal contiguous shards: rank r holds rows [lo, hi)."""
    cuts = [0] + [int(n * (r + 1) * (r + 2) / (size * (size + 1))) for r in range(size)]
    cuts[-1] = n
    return cuts[rank], cuts[rank + 1]


def data(n=53, m_x=6, classes=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m_x))
    y = rng.integers(0, classes, size=n)
    # The last class only in the first rows: rank 0's shard alone holds it.
    y[y == classes - 1] = 0
    y[:4] = classes - 1
    return X, y


def save_params(name, local, single):
    """Gather every rank's parameters to rank 0; rank 0 keeps them and the single-process ones."""
    gathered = comm.gather(np.asarray(local), root=0)
    if rank == 0:
        for r, p in enumerate(gathered):
            out[f"{name}/rank{r}"] = p
        out[f"{name}/single"] = np.asarray(single)


def record_error(name, fn):
    """Run fn on every rank; rank 0 keeps (type, message) of the error each rank raised."""
    try:
        fn()
        mine = None
    except Exception as exc:  # noqa: BLE001 - the error is the result
        mine = [type(exc).__name__, str(exc)]
    gathered = comm.gather(mine, root=0)
    if rank == 0:
        errors[name] = gathered


def network_case(name, dtype, batch_size, shuffle, epochs=4, extra=None, validation=False):
    X, y = data()
    lo, hi = shard_bounds(X.shape[0])
    kwargs = dict(sizes=[6, 8, 5, 3], activations=["relu", "tanh", "softmax"], loss="cce", dtype=dtype)
    fit = dict(dict(epochs=epochs, batch_size=batch_size, learning_rate=0.2, shuffle=shuffle), **(extra or {}))
    local_fit, single_fit = dict(fit), dict(fit)
    if validation:  # each rank holds a shard of the validation rows too
        Xv, yv = data(n=31, seed=5)
        vlo, vhi = shard_bounds(Xv.shape[0])
        local_fit["validation_data"] = (Xv[vlo:vhi], yv[vlo:vhi])
        single_fit["validation_data"] = (Xv, yv)
    # Ranks other than 0 start from other weights: the broadcast must fix that.
    net = dnnfast.Network(seed=rank, **kwargs)
    with Context():
        hist = net.fit(X[lo:hi], y[lo:hi], **local_fit)
    single = dnnfast.Network(seed=0, **kwargs)
    single_hist = single.fit(X, y, **single_fit) if rank == 0 else None
    save_params(name, net.parameters, single.parameters)
    if rank == 0:
        out[f"{name}/cost"] = np.array(hist.cost)
        out[f"{name}/cost_single"] = np.array(single_hist.cost)
        for key in ("val_cost", "accuracy", "val_accuracy"):
            if key in hist:
                out[f"{name}/{key}"] = np.array(hist[key])
                out[f"{name}/{key}_single"] = np.array(single_hist[key])


def checkpoint_case(result_path):
    """Checkpoint over 2 epochs, load, resume to 5 (every rank): equals 5 epochs in one go."""
    import os
    X, y = data()
    lo, hi = shard_bounds(X.shape[0])
    path = os.path.join(os.path.dirname(os.path.abspath(result_path)), "mpi_checkpoint.npz")
    kwargs = dict(sizes=[6, 8, 3], activations=["tanh", "softmax"], loss="cce", dtype="float64")
    fit = dict(batch_size=6, learning_rate=0.01, shuffle=True, optimizer="adam", weight_decay=1e-3)
    straight = dnnfast.Network(seed=0, **kwargs)
    with Context():
        straight.fit(X[lo:hi], y[lo:hi], epochs=5, **fit)
        first = dnnfast.Network(seed=0, **kwargs)
        first.fit(X[lo:hi], y[lo:hi], epochs=2, checkpoint=path, **fit)
        resumed = dnnfast.Network(seed=rank + 7, **kwargs)
        hist = resumed.fit(X[lo:hi], y[lo:hi], epochs=5, checkpoint=path, resume=True, **fit)
    save_params("checkpoint_resume", resumed.parameters, straight.parameters)
    if rank == 0:
        out["checkpoint_resume/epochs"] = np.array(len(hist["cost"]))


def interrupt_case():
    """Ctrl-C seen by the last rank only (its handler called from a callback):
    every rank stops at the same step with a KeyboardInterrupt, none hangs."""
    import _signal
    import signal
    X, y = data()
    lo, hi = shard_bounds(X.shape[0])
    net = dnnfast.Network([6, 8, 3], ["tanh", "softmax"], dtype="float64", seed=0)

    class CtrlC:
        def on_batch_end(self, net, step, logs):
            if rank == size - 1 and step >= 12:
                _signal.getsignal(int(signal.SIGINT))(signal.SIGINT, None)

    from dnnfast._train import driver
    saved, driver.CHUNK_SECONDS = driver.CHUNK_SECONDS, 0.0  # a chunk per batch: many boundaries
    caught = -1
    try:
        with Context():
            net.fit(X[lo:hi], y[lo:hi], epochs=50, batch_size=5, learning_rate=0.1, callbacks=[CtrlC()])
    except KeyboardInterrupt as exc:
        caught = len(exc.history["cost"])
    finally:
        driver.CHUNK_SECONDS = saved
    save_params("interrupt", net.parameters, net.parameters)
    caught_all = comm.gather(caught, root=0)
    if rank == 0:
        out["interrupt/epochs"] = np.array(caught_all)


def estimator_interrupt_case():
    """Ctrl-C seen by the last rank only, in an estimator's second epoch (its
    handler called from the step): every rank warns, undoes the cut epoch and
    returns with the first epoch's weights and attributes, none hangs."""
    import _signal
    import signal
    from dnnfast._estimators import _base
    from dnnfast._train import driver

    X, y = data()
    lo, hi = shard_bounds(X.shape[0])

    class CtrlC:
        steps = 0

        def __init__(self, net):
            self.net = net

        def __getattr__(self, name):
            return getattr(self.net, name)

        def apply_gradient_sum(self, *args):
            out = self.net.apply_gradient_sum(*args)
            CtrlC.steps += 1
            if rank == size - 1 and CtrlC.steps == 14:  # 11 batches an epoch: step 14 is in epoch 2
                _signal.getsignal(int(signal.SIGINT))(signal.SIGINT, None)
            return out

    def make(max_iter):
        return dnnfast.MLPClassifier(hidden_layer_sizes=(8,), solver="adam", batch_size=5, max_iter=max_iter,
                                     shuffle=True, random_state=0)

    core_net = _base._BaseMLP._core_net
    _base._BaseMLP._core_net = lambda self, dtype: CtrlC(core_net(self, dtype))
    saved, driver.CHUNK_SECONDS = driver.CHUNK_SECONDS, 0.0  # a chunk per batch: many boundaries
    est = make(50)
    try:
        with warnings.catch_warnings(record=True) as caught, Context():
            warnings.simplefilter("always")
            est.fit(X[lo:hi], y[lo:hi])
    finally:
        driver.CHUNK_SECONDS = saved
        _base._BaseMLP._core_net = core_net
    single = None
    if rank == 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter reached
            single = make(1).fit(X, y)
    flat = np.concatenate([a.ravel() for a in est.coefs_ + est.intercepts_])
    ref = np.concatenate([a.ravel() for a in single.coefs_ + single.intercepts_]) if rank == 0 else flat
    save_params("est_interrupt", flat, ref)
    seen = comm.gather((est.n_iter_, est.t_, len(est.loss_curve_), int(est._optimizer["t"][0]),
                        sum("interrupted" in str(w.message) for w in caught)), root=0)
    if rank == 0:
        out["est_interrupt/seen"] = np.array(seen)
        out["est_interrupt/seen_single"] = np.array([single.n_iter_, single.t_, len(single.loss_curve_),
                                                int(single._optimizer["t"][0]), 1])


def estimator_case(name, make, regression=False, weighted=False, partial=0, counts=False):
    X, y = data(n=61, seed=2)
    if regression:
        y = np.column_stack([X[:, 0] * 2 - X[:, 1], np.sin(X[:, 2])])
    if counts:  # non-negative targets, for loss="poisson"
        y = np.floor(2 * np.exp(0.5 * X[:, 0]))
    w = np.linspace(0.5, 2.0, X.shape[0]) if weighted else None
    lo, hi = shard_bounds(X.shape[0])
    kw = {} if w is None else {"sample_weight": w[lo:hi]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: few epochs on purpose
        est = make()
        single = make()
        kw_all = {} if w is None else {"sample_weight": w}
        if partial:  # partial_fit, `partial` epochs
            kw.update(classes=[0, 1, 2])
            kw_all.update(classes=[0, 1, 2])
        with Context():
            for _ in range(max(partial, 1)):
                (est.partial_fit if partial else est.fit)(X[lo:hi], y[lo:hi], **kw)
        if rank == 0:
            for _ in range(max(partial, 1)):
                (single.partial_fit if partial else single.fit)(X, y, **kw_all)
    flat = np.concatenate([a.ravel() for a in est.coefs_ + est.intercepts_])
    ref = np.concatenate([a.ravel() for a in single.coefs_ + single.intercepts_]) if rank == 0 else flat
    save_params(name, flat, ref)
    if rank == 0:
        out[f"{name}/loss_curve"] = np.array(est.loss_curve_)
        out[f"{name}/loss_curve_single"] = np.array(single.loss_curve_)
        if not regression:
            out[f"{name}/classes"] = est.classes_


def zero_weight_shard_case():
    """The last rank's rows all weigh 0: valid data as a whole (one process
    accepts it), refused shard by shard before; equals one process on all rows."""
    X, y = data()
    lo, hi = shard_bounds(X.shape[0])
    sw = np.full(hi - lo, 0.0 if rank == size - 1 else 1.0)
    sw_all = np.concatenate(comm.allgather(sw))

    def make():
        return dnnfast.MLPRegressor(hidden_layer_sizes=(5,), solver="adam", batch_size=8, max_iter=3, random_state=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        single = make().fit(X, y.astype(float), sample_weight=sw_all)
        with Context():
            local = make().fit(X[lo:hi], y[lo:hi].astype(float), sample_weight=sw)
    flat = lambda est: np.concatenate([a.ravel() for a in est.coefs_ + est.intercepts_])  # noqa: E731
    save_params("zero_weight_shard", flat(local), flat(single))


def main(path):
    for dtype in ("float64", "float32"):
        for batch_size in (None, 1, 7):
            for shuffle in (False, True):
                network_case(f"net_{dtype}_b{batch_size}_s{int(shuffle)}", dtype, batch_size, shuffle)
    # fit's training options (issue 17): the same driver, the summed-gradient step
    network_case("opt_adam_wd", "float64", 7, True, extra=dict(optimizer="adam", learning_rate=0.01,
                                                               weight_decay=1e-3, beta1=0.8))
    network_case("opt_nesterov_schedule", "float64", None, False,
                 extra=dict(optimizer="nesterov", momentum=0.7, learning_rate=lambda e: 0.3 / (1 + e)))
    network_case("opt_momentum_val_es", "float64", 5, True, epochs=30, validation=True,
                 extra=dict(optimizer="momentum", metrics=["accuracy"], early_stopping=True, patience=2))

    estimator_case("clf_sgd", lambda: dnnfast.MLPClassifier(
        hidden_layer_sizes=(7,), solver="sgd", learning_rate="invscaling", learning_rate_init=0.1,
        momentum=0.9, alpha=1e-3, batch_size=10, max_iter=5, random_state=0))
    estimator_case("clf_adam", lambda: dnnfast.MLPClassifier(
        hidden_layer_sizes=(9, 4), solver="adam", batch_size=16, max_iter=5, random_state=0))
    estimator_case("reg_adam_weighted", lambda: dnnfast.MLPRegressor(
        hidden_layer_sizes=(8,), solver="adam", batch_size=9, max_iter=6, random_state=3),
        regression=True, weighted=True)
    estimator_case("reg_sgd_plain", lambda: dnnfast.MLPRegressor(
        hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, alpha=0.0, batch_size=5, max_iter=3,
        learning_rate_init=0.01, random_state=3), regression=True)

    estimator_case("reg_poisson", lambda: dnnfast.MLPRegressor(
        loss="poisson", hidden_layer_sizes=(6,), solver="adam", batch_size=8, max_iter=4, random_state=2),
        regression=True, counts=True)

    estimator_case("clf_partial_fit", lambda: dnnfast.MLPClassifier(
        hidden_layer_sizes=(6,), solver="sgd", batch_size=8, random_state=1), partial=3)
    zero_weight_shard_case()
    checkpoint_case(path)
    interrupt_case()
    estimator_interrupt_case()
    blocks = comm.gather(Context().block(10), root=0)
    if rank == 0:
        out["blocks"] = np.array([(b.start, b.stop) for b in blocks])

    # Errors: raised on every rank, with the failing rank's message.
    X, y = data()
    lo, hi = shard_bounds(X.shape[0])
    Xs, ys = X[lo:hi].copy(), y[lo:hi]
    net = dnnfast.Network([6, 4, 3], ["relu", "softmax"], dtype="float64", seed=0)
    if rank == size - 1:
        Xs_nan = Xs.copy()
        Xs_nan[0, 0] = np.nan
    else:
        Xs_nan = Xs

    def fit_nan():
        with Context():
            net.fit(Xs_nan, ys, epochs=1)

    def fit_epochs_differ():
        with Context():
            net.fit(Xs, ys, epochs=1 + (rank == 1))

    def fit_diverges():
        big = dnnfast.Network([6, 4, 1], ["relu", "identity"], loss="sse", dtype="float64", seed=0)
        with Context():
            big.fit(Xs * 1e155, np.ones(Xs.shape[0]) * 1e155, epochs=2, learning_rate=1.0)

    def estimator_bad_rank():
        est = dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2)
        with Context():
            est.fit(Xs_nan, ys)

    def estimator_lbfgs():
        with Context():
            dnnfast.MLPClassifier(solver="lbfgs").fit(Xs, ys)

    def estimator_early_stopping():
        with Context():
            dnnfast.MLPClassifier(early_stopping=True).fit(Xs, ys)

    def step_fails_on_one_rank():
        """An error inside a step (after the checks) on the last rank only."""
        core = dnnfast.Network([6, 4, 3], ["relu", "softmax"], dtype="float64", seed=0)

        class Failing:
            calls = 0

            def gradient_sum(self, *args):
                Failing.calls += 1
                if rank == size - 1 and Failing.calls == 3:
                    raise MemoryError("simulated failure in step 3")
                return core._net.gradient_sum(*args)

            def apply_gradient_sum(self, *args):
                return core._net.apply_gradient_sum(*args)

        Y = np.eye(3)[ys]
        order = np.arange(X.shape[0], dtype=np.int64)
        options = dnnfast._core.TrainOptions(optimizer="sgd", learning_rate=0.1, batch_size=5)
        Context().train_epoch(Failing(), core.parameters, Xs, Y, None, order, options, None, None, None, lo)

    def fit_optimizer_differs():
        with Context():
            net.fit(Xs, ys, epochs=1, optimizer="adam" if rank == size - 1 else "sgd")

    def fit_on_nonfinite_differs():  # issue 18: rank 0 raised, rank 1 hung
        with Context():
            net.fit(Xs, ys, epochs=1, on_nonfinite="warn" if rank == size - 1 else "raise")

    class RaisesOnLastRank:  # a user's hook failing on one rank: the others waited in a collective for good
        def __init__(self, hook):
            setattr(self, hook, self.hook)

        def hook(self, net, *args):
            if rank == size - 1:
                raise RuntimeError("callback failed on the last rank")

    def fit_callback_raises(hook):
        with Context():
            net.fit(Xs, ys, epochs=2, batch_size=5, callbacks=[RaisesOnLastRank(hook)])

    def fit_schedule_raises():
        def schedule(epoch):
            if rank == size - 1 and epoch == 1:
                raise ZeroDivisionError("schedule failed on the last rank")
            return 0.1
        with Context():
            net.fit(Xs, ys, epochs=3, learning_rate=schedule)

    def fit_checkpoint_on_rank_0_only():  # rank 0 wrote and the others did not: a hang
        with Context():
            net.fit(Xs, ys, epochs=1, checkpoint=path + ".ckpt.npz" if rank == 0 else None)

    def fit_alpha_differs():  # trained one inconsistent model without a word
        other = dnnfast.Network([6, 4, 3], [("leaky_relu", {"alpha": 0.1 * (1 + rank)}), "softmax"],
                                dtype="float64", seed=0)
        with Context():
            other.fit(Xs, ys, epochs=1)

    class StopsOnRank0:  # a wall-clock budget, say: rank 0 left the loop while the others went on
        def on_epoch_end(self, net, epoch, logs):
            return rank == 0 and epoch == 1

    with Context():
        history = dnnfast.Network([6, 4, 3], ["relu", "softmax"], dtype="float64", seed=0).fit(
            Xs, ys, epochs=5, callbacks=[StopsOnRank0()])
    stopped = comm.gather(len(history["cost"]), root=0)
    if rank == 0:
        out["stop_epochs"] = np.array(stopped)

    def shard_bad_count():  # '3' was taken as 3, 2.5 as 2, -1 as a count
        Context().shard("3" if rank == size - 1 else 3)

    def draw_gives_floats():  # truncated into the order in silence
        Context().global_order(3, lambda: np.array([0.5, 1.7, 2.2]))

    last = rank == size - 1

    def estimator_y_overflows():  # a float32 fit, y too large for float32 on one rank: the others hung
        y_big = ys.astype(np.float64) * (1e39 if last else 1.0)
        with Context():
            dnnfast.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(Xs.astype(np.float32), y_big)

    def partial_fit_nan():  # partial_fit's own first checks, on one rank: the others hung
        y_nan = ys.astype(np.float64)
        if last:
            y_nan[0] = np.nan
        with Context():
            dnnfast.MLPClassifier(hidden_layer_sizes=(3,)).partial_fit(Xs, y_nan, classes=[0, 1, 2])

    def partial_fit_classes_missing():
        with Context():
            dnnfast.MLPClassifier(hidden_layer_sizes=(3,)).partial_fit(Xs, ys, classes=None if last else [0, 1, 2])

    def y_dimensions_differ():  # labels on one rank, an indicator matrix on another: every rank hung
        with Context():
            dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(Xs, np.eye(3)[ys] if last else ys)

    def labels_mix_strings_and_numbers():  # failed as "invalid literal for int()"
        with Context():
            dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(Xs, ys.astype(str) if last else ys)

    def sample_weight_on_some_ranks():  # trained different models on the ranks without a word
        with Context():
            dnnfast.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(
                Xs, ys.astype(float), sample_weight=None if last else np.full(len(ys), 3.0))

    def sparse_csr_refused_on_one_rank():  # the core's CSR copies refused by one rank's memory: the others hung
        import scipy.sparse as sp

        from dnnfast import _validation
        from dnnfast._train import rows

        Xsp = sp.csr_matrix(np.where(Xs > 1.5, Xs, 0.0))  # (a few values: read by the core as CSR)
        assert rows.takes_core_csr(Xsp)
        kept = rows.check_memory

        def no_memory_for_rows(need, name, what):  # this rank's memory too small for the sparse rows' copies
            available, floor = _validation.available_memory, _validation._MEMORY_CHECK_FLOOR
            _validation.available_memory, _validation._MEMORY_CHECK_FLOOR = (lambda: 0), 0
            try:
                kept(need, name, what)
            finally:
                _validation.available_memory, _validation._MEMORY_CHECK_FLOOR = available, floor

        if last:
            rows.check_memory = no_memory_for_rows
        try:
            with Context():
                dnnfast.MLPClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(Xsp, ys)
        finally:
            rows.check_memory = kept

    class Log:  # a logger on rank 0 alone: a meaningless TypeError on rank 0, a hang on the others
        def on_epoch_end(self, net, epoch, logs):
            pass

    def callback_on_rank_0_only():
        with Context():
            h = dnnfast.Network([6, 4, 3], ["relu", "softmax"], dtype="float64", seed=0).fit(
                Xs, ys, epochs=3, batch_size=5, callbacks=[Log()] if rank == 0 else None)
        assert len(h["cost"]) == 3

    for name, fn in [("estimator_y_overflows", estimator_y_overflows), ("partial_fit_nan", partial_fit_nan),
                     ("partial_fit_classes_missing", partial_fit_classes_missing),
                     ("y_dimensions_differ", y_dimensions_differ),
                     ("labels_mix", labels_mix_strings_and_numbers),
                     ("sample_weight_on_some_ranks", sample_weight_on_some_ranks),
                     ("sparse_csr_refused_on_one_rank", sparse_csr_refused_on_one_rank),
                     ("callback_on_rank_0_only", callback_on_rank_0_only),
                     ("shard_bad_count", shard_bad_count), ("draw_gives_floats", draw_gives_floats),
                     ("callback_raises", lambda: fit_callback_raises("on_epoch_end")),
                     ("batch_hook_raises", lambda: fit_callback_raises("on_batch_end")),
                     ("schedule_raises", fit_schedule_raises), ("checkpoint_differs", fit_checkpoint_on_rank_0_only),
                     ("alpha_differs", fit_alpha_differs),
                     ("optimizer_differs", fit_optimizer_differs), ("on_nonfinite_differs", fit_on_nonfinite_differs),
                     ("step_fails", step_fails_on_one_rank), ("nan_input", fit_nan), ("epochs_differ", fit_epochs_differ), ("diverges", fit_diverges),
                     ("estimator_nan", estimator_bad_rank), ("estimator_lbfgs", estimator_lbfgs),
                     ("estimator_early_stopping", estimator_early_stopping)]:
        record_error(name, fn)

    if rank == 0:
        out["errors"] = np.array(json.dumps(errors))
        out["size"] = np.array(size)
        np.savez(path, **out)


# Estimator settings that differ on the last rank (issue 18): each must raise
# one ValueError on every rank naming the setting. The first three hung in a
# collective, the others trained different models without a word.
MISMATCH_CASES = {
    "learning_rate_init": ("learning_rate_init", 1e-3, 2e-3),
    "solver": ("solver", "sgd", "adam"),
    "alpha": ("alpha", 1e-4, 1e-3),
    "class_weight": ("class_weight", {0: 1.0}, {0: 2.0}),
    "max_iter": ("max_iter", 3, 4),
    "batch_size": ("batch_size", 5, 7),
    "hidden_layer_sizes": ("hidden_layer_sizes", (5,), (6,)),
    "partial_fit_classes": (None, [0, 1, 2], [0, 1, 2, 3]),
}
CASE_TIMEOUT = 20  # seconds: a hanging case ends the job (os._exit) instead of blocking it


def mismatch(path, names):
    """One mpiexec run for every mismatch case; rank 0 appends one JSON line
    per case to ``path`` as it ends ({"case", "errors"}), or {"case", "hung"}
    when a case runs past CASE_TIMEOUT (the job then stops)."""
    import os
    import threading

    X, y = data(n=40, seed=3)
    lo, hi = shard_bounds(X.shape[0])
    last = rank == size - 1
    for name in names:
        param, value, other = MISMATCH_CASES[name]

        def hung(name=name):
            if rank == 0:
                with open(path, "a") as f:
                    f.write(json.dumps({"case": name, "hung": True}) + "\n")
            os._exit(3)

        timer = threading.Timer(CASE_TIMEOUT, hung)
        timer.daemon = True
        timer.start()

        def fit():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Context():
                    if param is None:  # partial_fit's classes argument
                        est = dnnfast.MLPClassifier(hidden_layer_sizes=(4,), solver="sgd", batch_size=8,
                                                    random_state=0)
                        est.partial_fit(X[lo:hi], y[lo:hi], classes=other if last else value)
                    else:
                        kw = {"hidden_layer_sizes": (4,), "solver": "sgd", "batch_size": 8, "max_iter": 3,
                              "random_state": 0, param: other if last else value}
                        dnnfast.MLPClassifier(**kw).fit(X[lo:hi], y[lo:hi])

        try:
            fit()
            mine = None
        except Exception as exc:  # noqa: BLE001 - the error is the result
            mine = [type(exc).__name__, str(exc)]
        gathered = comm.gather(mine, root=0)
        timer.cancel()
        if rank == 0:
            with open(path, "a") as f:
                f.write(json.dumps({"case": name, "errors": gathered}) + "\n")


def uncaught():
    """The last rank's shard holds a NaN and nobody catches the error: every
    rank must exit with it (none may wait forever in a collective)."""
    X, y = data()
    lo, hi = shard_bounds(X.shape[0])
    Xs = X[lo:hi].copy()
    if rank == size - 1:
        Xs[0, 0] = np.nan
    net = dnnfast.Network([6, 4, 3], ["relu", "softmax"], dtype="float64", seed=0)
    with Context():
        net.fit(Xs, y[lo:hi], epochs=1)
    print("not reached", flush=True)


# -- scenarios: one mpiexec run each (test_distributed.py's ``scenario``) -------------------------------

SCENARIO_TIMEOUT = 20  # seconds: a rank still running then reports itself hung and ends the job


def _small_fit_data():
    """40 rows of 4 features, 2 classes; this rank's contiguous share."""
    X = np.random.default_rng(0).normal(size=(40, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    lo, hi = shard_bounds(X.shape[0])
    return X[lo:hi], y[lo:hi]


def _small_net(seed=0):
    return dnnfast.Network([4, 6, 2], ["tanh", "softmax"], dtype="float64", seed=seed)


SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def run_scenario(name, path):
    """Run SCENARIOS[name] on this rank; write ``path.<rank>`` (JSON): {"result": ...}
    or {"error": [type, message, SystemExit's code]}, or {"hung": true} when it runs
    past SCENARIO_TIMEOUT (then this rank ends with os._exit and mpiexec ends the job)."""
    import os
    import threading

    def write(obj):
        with open(f"{path}.{rank}", "w") as f:
            json.dump(obj, f)

    def hung():
        write({"hung": True})
        os._exit(3)

    timer = threading.Timer(SCENARIO_TIMEOUT, hung)
    timer.daemon = True
    timer.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mine = {"result": SCENARIOS[name]()}
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt and SystemExit are results too
        try:
            text = str(exc)
        except Exception:  # noqa: BLE001 - a scenario's exception whose str() fails
            text = "<str() failed>"
        mine = {"error": [type(exc).__name__, text, getattr(exc, "code", None)]}
    timer.cancel()
    write(mine)


def _on_last_rank_once(when, act):
    """A callback whose hook ``when`` ("on_epoch_end" at epoch 1, "on_batch_end"
    from step 8) calls ``act()`` on the last rank, once."""
    class Once:
        done = False

        def hook(self, net, count, logs):
            ready = count == 1 if when == "on_epoch_end" else count >= 8
            if rank == size - 1 and ready and not self.done:
                self.done = True
                act()
    obj = Once()
    setattr(obj, when, obj.hook)
    return obj


def _fit_with(callback):
    with Context():
        _small_net().fit(*_small_fit_data(), epochs=5, batch_size=5, callbacks=[callback])


def _raise(exc):
    raise exc


@scenario
def keyboard_interrupt_in_callback():
    _fit_with(_on_last_rank_once("on_epoch_end", lambda: _raise(KeyboardInterrupt("stop asked on the last rank"))))


@scenario
def sys_exit_in_callback():
    _fit_with(_on_last_rank_once("on_epoch_end", lambda: sys.exit(3)))


@scenario
def sys_exit_message_in_callback():
    _fit_with(_on_last_rank_once("on_epoch_end", lambda: sys.exit("leaving on the last rank")))


@scenario
def own_sigint_handler_raises():
    """A SIGINT handler of the user's (the fit leaves it in place) raising on the last rank."""
    import os
    import signal

    def handler(signum, frame):
        raise KeyboardInterrupt("the user's own handler")
    saved = signal.signal(signal.SIGINT, handler)
    try:
        _fit_with(_on_last_rank_once("on_batch_end", lambda: os.kill(os.getpid(), signal.SIGINT)))
    finally:
        signal.signal(signal.SIGINT, saved)


@scenario
def sigterm_handler_exits():
    """A SIGTERM handler calling sys.exit, run on the last rank during the fit."""
    import os
    import signal

    saved = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(4))
    try:
        _fit_with(_on_last_rank_once("on_batch_end", lambda: os.kill(os.getpid(), signal.SIGTERM)))
    finally:
        signal.signal(signal.SIGTERM, saved)


def _own_handler_mid_step(signum, handler):
    """The user's handler of ``signum`` (installed before the fit) raising on
    the last rank in the middle of a step: the signal comes right after a
    step's Allreduce (its 20th sum over the ranks), outside any agreed
    block, as an outside signal at an arbitrary moment does. Returns (type,
    message, exit code) of this rank's exception, whether every rank ends
    with the same parameters, and whether the handler is back."""
    import os
    import signal

    from dnnfast import distributed

    sums = [0]
    sum_ = distributed.Context.sum_

    def counted(self, buf):
        out = sum_(self, buf)
        sums[0] += 1
        if rank == size - 1 and sums[0] == 20:
            os.kill(os.getpid(), signum)
        return out

    saved = signal.signal(signum, handler)
    distributed.Context.sum_ = counted
    net = _small_net()
    try:
        with Context():
            net.fit(*_small_fit_data(), epochs=50, batch_size=5)
        caught = None
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt and SystemExit are the results
        caught = [type(exc).__name__, str(exc), getattr(exc, "code", None)]
    finally:
        distributed.Context.sum_ = sum_
        back = signal.signal(signum, saved) is handler
    every = comm.allgather(net.parameters.copy())
    return [caught, all(np.array_equal(every[0], p) for p in every), back]


@scenario
def own_sigint_handler_raises_mid_step():
    def handler(signum, frame):
        raise KeyboardInterrupt("the user's own handler")
    import signal
    return _own_handler_mid_step(signal.SIGINT, handler)


@scenario
def sigterm_handler_exits_mid_step():
    import signal
    return _own_handler_mid_step(signal.SIGTERM, lambda signum, frame: sys.exit(4))


def _ctrl_c_while_checking_data(fit):
    """Ctrl-C reaches every rank while rank 0 still converts its X (before
    the epoch loop): the others get it while they wait in the agreement's
    collective. ``fit(X, y)`` inside a Context. Returns (the exception,
    whether Python's handler is back)."""
    import os
    import signal
    import threading
    import time

    X, y = _small_fit_data()

    class Slow:  # rank 0's X: the signal comes during its conversion
        def __array__(self, dtype=None, copy=None):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1.0)
            return X if dtype is None else X.astype(dtype)

    if rank != 0:
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    try:
        with Context():
            fit(Slow() if rank == 0 else X, y)
        caught = None
    except KeyboardInterrupt as exc:
        caught = [type(exc).__name__, str(exc)]
    time.sleep(0.6)  # (the timer's signal has come)
    return [caught, signal.getsignal(signal.SIGINT) is signal.default_int_handler]


@scenario
def ctrl_c_while_checking_data():
    return _ctrl_c_while_checking_data(lambda X, y: _small_net().fit(X, y, epochs=3, batch_size=5))


@scenario
def estimator_ctrl_c_while_checking_data():
    """As ctrl_c_while_checking_data, in an estimator's fit: the result also
    says whether the estimator is fitted afterwards."""
    est = dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    return _ctrl_c_while_checking_data(est.fit) + [hasattr(est, "coefs_")]


class _FullStream:
    """A stream on a full disk: every write fails (as a file on /dev/full)."""

    def write(self, text):
        import errno
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        pass


def _output_fails_on_rank_0(fit):
    """Rank 0's stdout and stderr fail (a full disk); the others' work."""
    saved = sys.stdout, sys.stderr
    if rank == 0:
        sys.stdout = sys.stderr = _FullStream()
    try:
        with Context():
            X, y = _small_fit_data()
            fit(X, y)
    finally:
        sys.stdout, sys.stderr = saved


@scenario
def verbose_output_fails_on_rank_0():
    _output_fails_on_rank_0(lambda X, y: _small_net().fit(X, y, epochs=3, batch_size=5, verbose=True))


@scenario
def progress_output_fails_on_rank_0():
    _output_fails_on_rank_0(lambda X, y: _small_net().fit(X, y, epochs=3, batch_size=5, progress=True))


@scenario
def estimator_verbose_output_fails_on_rank_0():
    _output_fails_on_rank_0(dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=3, verbose=True).fit)


@scenario
def bad_seed_on_one_rank():
    with Context():
        _small_net().fit(*_small_fit_data(), epochs=2, batch_size=5, shuffle=True,
                         seed=-1 if rank == size - 1 else 7)


def _poison_on_last_rank(when, net=None):
    """The last rank writes NaN into its parameters (a callback gone wrong):
    "end" at the last epoch's end, after the epoch's check; "chunk" after
    the last chunk of the first epoch, before it; "between" at the first
    epoch's end, after its check (the second epoch's check finds it)."""
    from dnnfast._train import driver

    class Poison:
        def on_epoch_end(self, net, epoch, logs):
            if rank == size - 1 and (when, epoch) in (("end", 2), ("between", 0)):
                net.parameters[0] = np.nan

        def on_batch_end(self, net, step, logs):
            if rank == size - 1 and when == "chunk" and logs["rows"] == 40 and step <= 8:
                net.parameters[0] = np.nan

    saved, driver.CHUNK_SECONDS = driver.CHUNK_SECONDS, 0.0  # a chunk per batch
    try:
        with Context():
            (net or _small_net()).fit(*_small_fit_data(), epochs=3, batch_size=5, callbacks=[Poison()])
    finally:
        driver.CHUNK_SECONDS = saved


@scenario
def nan_written_after_the_last_epoch_on_one_rank():
    _poison_on_last_rank("end")


@scenario
def nan_written_within_an_epoch_on_one_rank():
    _poison_on_last_rank("chunk")


def _nan_leaves_one_model(when):
    """After the NonFiniteError of ``_poison_on_last_rank(when)``: (its
    type, its message, whether every rank holds the same parameters,
    whether they are the fit's start)."""
    net = _small_net()
    start = net.parameters.copy()
    caught = None
    try:
        _poison_on_last_rank(when, net)
    except ValueError as exc:  # (NonFiniteError's base: the others' type)
        caught = [type(exc).__name__, str(exc)]
    every = comm.allgather(net.parameters.copy())
    return caught + [all(np.array_equal(every[0], p) for p in every), bool(np.array_equal(net.parameters, start))]


@scenario
def nan_written_within_an_epoch_leaves_one_model():
    return _nan_leaves_one_model("chunk")


@scenario
def nan_written_between_epochs_leaves_one_model():
    return _nan_leaves_one_model("between")


def _fit_with_probe(kind):
    """A callback on rank 0 alone fits a small probe model each epoch (an
    evaluator): "net" / "est" inside the outer fit's Context, "self" inside a
    Context of its own over MPI.COMM_SELF (this rank alone). Returns whether
    every rank ends with the same parameters."""
    X, y = _small_fit_data()

    class Probe:
        def on_epoch_end(self, net, epoch, logs):
            if rank != 0:
                return
            if kind == "net":
                _small_net(seed=1).fit(X, y, epochs=1)
            elif kind == "est":
                dnnfast.MLPClassifier((3,), max_iter=2).fit(X, y)
            else:
                with Context(MPI.COMM_SELF):
                    dnnfast.MLPClassifier((3,), max_iter=2, random_state=0).fit(X, y)

    net = _small_net()
    with Context():
        net.fit(X, y, epochs=3, batch_size=5, callbacks=[Probe()])
    every = comm.allgather(net.parameters.copy())
    return all(np.array_equal(every[0], p) for p in every)


@scenario
def network_fit_from_a_callback():
    return _fit_with_probe("net")


@scenario
def estimator_fit_from_a_callback():
    return _fit_with_probe("est")


@scenario
def fit_over_comm_self_from_a_callback():
    return _fit_with_probe("self")


class _StrFails(Exception):
    def __str__(self):
        raise RuntimeError("no str")


def _error_in_callback(make):
    def fail():
        raise make()
    _fit_with(_on_last_rank_once("on_epoch_end", fail))


@scenario
def json_error_in_callback():
    _fit_with(_on_last_rank_once("on_epoch_end", lambda: json.loads("{bad")))


@scenario
def file_not_found_in_callback():
    _fit_with(_on_last_rank_once("on_epoch_end", lambda: open("/nonexistent/dnnfast/x")))


@scenario
def error_without_str_in_callback():
    _error_in_callback(_StrFails)


def _continued(case):
    """Each rank first fits its own model on its shard (as if each had loaded
    its own file), rank 1 for longer; then all continue it inside a Context.
    Returns this rank's weights, n_iter_ and t_, and on rank 0 the weights of
    rank 0's model continued in one process on all the rows."""
    import copy

    from dnnfast import MLPRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4))
    y = X[:, 0] - 2 * X[:, 1]
    lo, hi = shard_bounds(X.shape[0])
    if case == "partial":  # adam's moments and step count, t_
        est = MLPRegressor(hidden_layer_sizes=(6,), random_state=0)
        for _ in range(1 + 3 * rank):
            est.partial_fit(X[lo:hi], y[lo:hi])
        again = {}
    elif case == "invscaling":  # sgd's velocity and the rate of the schedule
        est = MLPRegressor(hidden_layer_sizes=(6,), solver="sgd", learning_rate="invscaling", max_iter=2 + 3 * rank,
                           random_state=0, warm_start=True)
        est.fit(X[lo:hi], y[lo:hi])
        again = {"max_iter": 3}
    else:  # "tol": the stopping record (best_loss_, _no_improvement_count)
        est = MLPRegressor(hidden_layer_sizes=(6,), max_iter=2 if rank == 0 else 60, tol=1e-3, n_iter_no_change=3,
                           random_state=0, warm_start=True, learning_rate_init=0.05)
        est.fit(X[lo:hi], y[lo:hi])
        again = {"max_iter": 30}
    ref = copy.deepcopy(est) if rank == 0 else None
    with Context():
        est.set_params(**again)
        (est.partial_fit if case == "partial" else est.fit)(X[lo:hi], y[lo:hi])
    flat = lambda e: np.concatenate([a.ravel() for a in e.coefs_ + e.intercepts_]).tolist()  # noqa: E731
    if ref is not None:
        ref.set_params(**again)
        (ref.partial_fit if case == "partial" else ref.fit)(X, y)
    return {"P": flat(est), "n_iter": est.n_iter_, "t": est.t_, "ref": None if ref is None else flat(ref),
            "ref_n_iter": None if ref is None else ref.n_iter_}


@scenario
def warm_start_with_a_class_on_one_rank_only():
    """Class 2 is in rank 0's rows only: the first fit takes all ranks'
    classes; the warm fit and partial_fit compared the local ones and were
    refused ("warm_start can only be used where y has the same classes")."""
    from dnnfast import MLPClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.arange(40) % 2
    y[[1, 4, 7]] = 2  # class 2 only in the first rows: rank 0's shard (shard_bounds: 13 of 40 rows there)
    lo, hi = shard_bounds(X.shape[0])
    est = MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0, warm_start=True)
    with Context():
        est.fit(X[lo:hi], y[lo:hi])
        est.fit(X[lo:hi], y[lo:hi])
        est.partial_fit(X[lo:hi], y[lo:hi])
    return {"classes": est.classes_.tolist(), "n_iter": est.n_iter_}


@scenario
def exit_with_an_int_enum_code_on_one_rank():
    """sys.exit(code) with an IntEnum defined in a function: its code cannot be
    pickled, so the broadcast to the other ranks failed and they hung."""
    import enum

    class Status(enum.IntEnum):
        STOP = 4

    def stop():
        sys.exit(Status.STOP)

    _fit_with(_on_last_rank_once("on_epoch_end", stop))


@scenario
def continued_partial_fit():
    return _continued("partial")


@scenario
def continued_invscaling_fit():
    return _continued("invscaling")


@scenario
def continued_fit_stopping_on_tol():
    return _continued("tol")


@scenario
def mismatch_messages_name_fit_arguments():
    """Each message of a fit whose seed / validation_data is given on some ranks only."""
    X, y = _small_fit_data()
    messages = []
    for kw in ({"seed": 3} if rank else {}, {} if rank else {"validation_data": (X, y)}):
        try:
            with Context():
                _small_net().fit(X, y, epochs=1, **kw)
            messages.append(None)
        except ValueError as exc:
            messages.append(str(exc))
    return messages


@scenario
def context_communicators():
    """Context over a freed communicator, a null one, and COMM_WORLD in a
    base-class wrapper: (type, message) of each refusal, or the size of the
    Context and whether a fit with it ends the same on every rank."""
    out = []
    freed = comm.Dup()
    freed.Free()
    for make in (lambda: freed, lambda: MPI.Intracomm(), lambda: MPI.Comm(comm)):
        try:
            ctx = Context(make())
        except Exception as exc:  # noqa: BLE001 - the refusal is the result
            out.append([type(exc).__name__, str(exc)])
            continue
        net = _small_net(seed=rank)
        with ctx:
            net.fit(*_small_fit_data(), epochs=1)
        every = comm.allgather(net.parameters.copy())
        out.append([ctx.size, all(np.array_equal(every[0], p) for p in every)])
    return out


if __name__ == "__main__":
    if sys.argv[1] == "--uncaught":
        uncaught()
    elif sys.argv[1] == "--scenario":  # --scenario NAME PATH
        run_scenario(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "--mismatch":  # --mismatch PATH [CASE ...]
        mismatch(sys.argv[2], sys.argv[3:] or list(MISMATCH_CASES))
    else:
        main(sys.argv[1])
