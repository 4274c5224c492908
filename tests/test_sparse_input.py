"""A sparse X that the core reads as CSR (``_core.Csr32`` / ``Csr64``, made by
``dnnfast._train.rows.core_csr``): the first layer's product and weight
gradient over the stored values only (``VMathFns::csr_times``,
``csr_scatter``). Every call that takes one (predict, cost,
loss_and_gradient, gradient_sum, train_epoch) is held to the NumPy
reference on X made dense, on every kernel table, bit-identical over thread
counts; the CSR arrays are checked before the core reads them; the
estimators take a sparse X of few values this way, never making it dense.

Tolerances, relative to the largest magnitude compared: float64 1e-12,
float32 1e-5 (the reference runs in float64 on the float32 parameters)."""
import warnings

import numpy as np
import pytest

import dnnfast
from dnnfast import _core, reference

sparse = pytest.importorskip("scipy.sparse")
from dnnfast._train import rows as _rows  # noqa: E402  (imports SciPy lazily itself)

TOL = {np.float64: 1e-12, np.float32: 1e-5}
DTYPES = (np.float64, np.float32)

# First layers of several widths (whole vectors, strips of four, ragged
# edges on each table's lanes), each activation kind the first layer can
# have, and a network of one layer (the output layer reads X).
SPECS = {
    "relu-softmax": ([300, 23, 4], ["relu", "softmax"], "cce"),
    "tanh-sigmoid": ([300, 70, 9, 2], ["tanh", "sigmoid", "sigmoid"], "bce"),
    "identity": ([300, 3], ["identity"], "mse"),
    "prelu": ([300, 40, 1], ["prelu", "identity"], "mse"),
    "elu-wide": ([300, 129, 5], ["elu", "softmax"], "cce"),
}


def _sparse_x(n, m, dtype, seed=0, density=0.04):
    """A CSR of n rows, a few of them empty, with one row of many values."""
    rng = np.random.default_rng(seed)
    X = sparse.random(n, m, density=density, format="lil", random_state=seed, dtype=np.float64)
    X[3, :] = 0
    X[n - 1, :] = 0
    X[5, ::3] = rng.standard_normal(len(range(0, m, 3)))
    X = X.tocsr()
    X.data = (X.data * 3).astype(dtype)
    return X


def _network(spec, dtype, seed=1):
    sizes, acts, loss = SPECS[spec]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = dnnfast.Network(sizes, acts, loss=loss, dtype=dtype, seed=seed)
    rng = np.random.default_rng(seed)
    net.parameters[:] = rng.standard_normal(net.parameters.size).astype(dtype) * 0.1
    return net


def _targets(net, n, seed=2):
    rng = np.random.default_rng(seed)
    k = net.sizes[-1]
    if net.loss == "cce":
        return np.eye(k, dtype=net.dtype)[rng.integers(0, k, n)]
    if net.loss == "bce":
        return (rng.random((n, k)) < 0.5).astype(net.dtype)
    return rng.standard_normal((n, k)).astype(net.dtype)


def _ref64(net):
    """The network's weights, biases and activations in float64, for the reference."""
    return ([np.asarray(W, np.float64) for W in net.weights], [np.asarray(b, np.float64) for b in net.biases],
            [(s.name, np.asarray(al, np.float64) if al is not None else (s.param if s.has_param else None))
             for s, al in zip(net._acts, net.alphas)])


def _close(got, want, dtype, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(np.abs(want).max(), 1e-300)
    err = np.abs(got - want).max() / scale
    assert err <= TOL[dtype], f"{what}: relative error {err:.3g} > {TOL[dtype]:g}"


def _flat_grad(net, dWs, dbs, dalphas):
    """The reference's gradients in the core's flat layout."""
    G = np.zeros(net.parameters.size)
    for l, layer in enumerate(net._layout):
        G[layer["w_offset"]:layer["w_offset"] + dWs[l].size] = dWs[l].ravel()
        G[layer["b_offset"]:layer["b_offset"] + dbs[l].size] = dbs[l].ravel()
        if layer["alpha_offset"] is not None:
            G[layer["alpha_offset"]:layer["alpha_offset"] + dalphas[l].size] = dalphas[l].ravel()
    return G


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("spec", sorted(SPECS))
def test_predict_cost_and_gradients_on_a_csr_are_the_references(kernel_table, spec, dtype):
    net = _network(spec, dtype)
    n = 61
    X = _sparse_x(n, net.sizes[0], dtype)
    D = X.toarray().astype(np.float64)
    C = _rows.core_csr(X, dtype)
    Y = _targets(net, n)
    core, P = net._net, net.parameters
    Ws, bs, acts = _ref64(net)
    Yhat = reference.forward(Ws, bs, acts, D)[1][-1]
    _close(core.predict(P, C), Yhat, dtype, "predict")
    # (the loss's clipping of probabilities is the dtype's: the reference's on Yhat in it)
    _close(core.cost(P, C, Y), reference.loss_forward(net.loss, Y, Yhat.astype(dtype)) / n, dtype, "cost")

    rows = np.random.default_rng(3).permutation(n)[:29].astype(np.int64)
    rows[4] = rows[7]  # a row twice in one batch
    c, dWs, dbs, dal = reference.gradients(Ws, bs, acts, net.loss, D[rows], Y[rows].astype(np.float64))
    G = np.empty_like(P)
    cost, penalty = core.loss_and_gradient(P, C, Y, None, rows, 0.0, G)
    _close(G, _flat_grad(net, dWs, dbs, dal), dtype, "loss_and_gradient")
    _close(cost, c, dtype, "loss_and_gradient's cost")
    assert penalty == 0.0
    J, wsum = core.gradient_sum(P, C, Y, None, rows, G)
    assert wsum == rows.size
    _close(G, _flat_grad(net, dWs, dbs, dal) * rows.size, dtype, "gradient_sum")
    _close(J, c * rows.size, dtype, "gradient_sum's cost")
    # consecutive rows: read in place
    c, dWs, dbs, dal = reference.gradients(Ws, bs, acts, net.loss, D[10:40], Y[10:40].astype(np.float64))
    core.loss_and_gradient(P, C, Y, None, np.arange(10, 40, dtype=np.int64), 0.0, G)
    _close(G, _flat_grad(net, dWs, dbs, dal), dtype, "loss_and_gradient, consecutive rows")


@pytest.mark.parametrize("weight_decay", [0.0, 0.03])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("spec", ["relu-softmax", "tanh-sigmoid", "prelu"])
def test_plain_sgd_on_a_csr_takes_the_references_steps(kernel_table, spec, dtype, weight_decay):
    """Plain SGD steps the first W in place over the batch's values only
    (csr_scatter with -lr), its L2 term a step of its own on every W
    (l2_decay): each batch's step, and its penalty, is the reference's, in
    turn."""
    net = _network(spec, dtype)
    n, batch, lr = 40, 6, 0.05
    X = _sparse_x(n, net.sizes[0], dtype)
    D = X.toarray().astype(np.float64)
    Y = _targets(net, n)
    order = np.random.default_rng(4).permutation(n).astype(np.int64)
    P64 = net.parameters.astype(np.float64)
    ref = _network(spec, np.float64)
    penalty_sum = 0.0
    for b0 in range(0, n, batch):
        ref.parameters[:] = P64
        Ws, bs, acts = _ref64(ref)
        idx = order[b0:b0 + batch]
        _, dWs, dbs, dal = reference.gradients(Ws, bs, acts, net.loss, D[idx], Y[idx].astype(np.float64))
        penalty_sum += 0.5 * weight_decay * sum(float((W * W).sum()) for W in Ws) * idx.size
        P64 -= lr * _flat_grad(ref, [dW + weight_decay * W for dW, W in zip(dWs, Ws)], dbs, dal)
    options = _core.TrainOptions(optimizer="sgd", learning_rate=lr, batch_size=batch, weight_decay=weight_decay)
    cost_sum, penalty, updates = net._net.train_epoch(net.parameters, _rows.core_csr(X, dtype), Y, None, order,
                                                      options)
    assert updates == -(-n // batch) and np.isfinite(cost_sum)
    _close(net.parameters, P64, dtype, "the epoch's parameters")
    if weight_decay:
        _close(penalty, penalty_sum, dtype, "the epoch's penalty")
    else:
        assert penalty == 0.0


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("optimizer", ["adam", "momentum", "sgd-l2"])
def test_an_epoch_on_a_csr_is_the_epoch_on_x_made_dense(kernel_table, optimizer, dtype):
    """Adam, momentum and SGD with an L2 term, weighted rows, shuffled and
    consecutive batches: the epoch on the CSR is the epoch on the dense rows
    (itself held to the reference elsewhere) to round-off."""
    net = _network("elu-wide", dtype)
    n = 50
    X = _sparse_x(n, net.sizes[0], dtype)
    Y = _targets(net, n)
    w = np.random.default_rng(5).random(n).astype(dtype)
    opt = {"adam": dict(optimizer="adam", learning_rate=1e-3), "momentum": dict(optimizer="momentum"),
           "sgd-l2": dict(optimizer="sgd", l2=0.3)}[optimizer]
    results = []
    for x in (X.toarray(), _rows.core_csr(X, dtype)):
        P = net.parameters.copy()
        s1, s2, t = np.zeros_like(P), np.zeros_like(P), np.zeros(1, np.int64)
        options = _core.TrainOptions(batch_size=8, **opt)
        sums = []
        for order in (np.random.default_rng(6).permutation(n), np.arange(n)):
            sums.append(net._net.train_epoch(P, x, Y, w, order.astype(np.int64), options, s1, s2, t)[:2])
        results.append((P, sums))
    (Pd, sd), (Ps, ss) = results
    # Adam divides by the square root of the gradients' squares: where one is
    # a few roundings from 0 its step's direction is round-off itself; the
    # rest of the parameters agree as the others do.
    tol = TOL[dtype] * (1e4 if optimizer == "adam" else 10)
    err = np.abs(Pd.astype(np.float64) - Ps).max() / np.abs(Pd).max()
    assert err <= tol, f"{optimizer}: relative error {err:.3g}"
    for a, b in zip(sd, ss):
        np.testing.assert_allclose(a, b, rtol=TOL[dtype] * 100)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_csr_calls_give_the_same_bits_on_any_thread_count(restore_threads, dtype):
    """Rows split over threads (csr_times), columns split in 64-byte lines
    (csr_scatter): each output's sums in one order on any split."""
    net = _network("elu-wide", dtype)
    n = 900
    X = _sparse_x(n, net.sizes[0], dtype, density=0.3)
    C = _rows.core_csr(X, dtype)
    Y = _targets(net, n)
    out = []
    for nt in (1, 2, 3):
        _core.set_num_threads(nt)
        P = net.parameters.copy()
        G = np.empty_like(P)
        pred = net._net.predict(P, C)
        net._net.loss_and_gradient(P, C, Y, None, None, 0.1, G)
        s1, s2, t = np.zeros_like(P), np.zeros_like(P), np.zeros(1, np.int64)
        for opt in ("adam", "sgd"):
            options = _core.TrainOptions(optimizer=opt, learning_rate=1e-3, batch_size=300)
            net._net.train_epoch(P, C, Y, None, np.arange(n, dtype=np.int64), options, s1, s2, t)
        out.append((pred, G, P))
    for other in out[1:]:
        for a, b in zip(out[0], other):
            assert np.array_equal(a, b)


def _csr(dtype=np.float64, n_cols=300):
    X = _sparse_x(7, n_cols, dtype)
    return X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data.astype(dtype)


@pytest.mark.parametrize("change, error, message", [
    (lambda p, j, d: (p + 1, j, d), ValueError, "indptr"),
    (lambda p, j, d: (p[::-1].copy(), j, d), ValueError, "indptr"),
    (lambda p, j, d: (np.r_[p[:-1], p[-1] - 1], j, d), ValueError, "indptr"),
    (lambda p, j, d: (p[:0], j, d), ValueError, "indptr"),
    (lambda p, j, d: (p, np.r_[j[:-1], 300], d), ValueError, "indices"),
    (lambda p, j, d: (p, np.r_[-1, j[1:]], d), ValueError, "indices"),
    (lambda p, j, d: (p, j[:-1], d), ValueError, "indices, data"),
    (lambda p, j, d: (p, j, np.r_[d[:-1], np.nan]), ValueError, "NaN or infinity"),
    (lambda p, j, d: (p, j, np.r_[np.inf, d[1:]]), ValueError, "NaN or infinity"),
    # exactly C-contiguous int64 and the dtype's values, never converted in silence
    (lambda p, j, d: (p, j.astype(np.int32), d), TypeError, "incompatible"),
    (lambda p, j, d: (p, j, d.astype(np.float32)), TypeError, "incompatible"),
    (lambda p, j, d: (p, j[::2], d[::2]), TypeError, "incompatible"),
])
def test_a_csr_that_would_read_out_of_bounds_is_refused(change, error, message):
    p, j, d = change(*_csr())
    with pytest.raises(error, match=message):
        _core.Csr64(p, j, d, 300)


def test_csr_calls_check_their_other_arguments():
    net = _network("relu-softmax", np.float64)
    core, P = net._net, net.parameters
    p, j, d = _csr()
    with pytest.raises(ValueError, match="X: wrong number of columns"):
        core.predict(P, _core.Csr64(p, j, d, 301))
    C = _core.Csr64(p, j, d, 300)
    assert C.shape == (7, 300)
    Y = _targets(net, 7)
    G = np.empty_like(P)
    with pytest.raises(ValueError, match="rows: index out of range"):
        core.loss_and_gradient(P, C, Y, None, np.array([0, 7], np.int64), 0.0, G)
    with pytest.raises(ValueError, match="rows: index out of range"):
        core.gradient_sum(P, C, Y, None, np.array([-1], np.int64), G)
    with pytest.raises(IndexError, match="order: row index out of range"):  # (as for a dense X)
        core.train_epoch(P, C, Y, None, np.array([0, 8], np.int64), _core.TrainOptions())
    with pytest.raises(ValueError, match="Y"):
        core.cost(P, C, Y[:6])
    with pytest.raises(TypeError):  # a float32 network takes a Csr32
        _network("relu-softmax", np.float32)._net.predict(np.zeros(net.parameters.size, np.float32), C)


# -- the estimators -----------------------------------------------------------

def _no_dense_copies(monkeypatch, columns):
    """Every sparse class's toarray and todense raise on a matrix of X's
    ``columns`` (scikit-learn's label binarizer makes its own sparse
    targets dense): nothing makes X dense."""
    def refusing(made):
        def refuse(self, *args, **kwargs):
            if self.shape[1] == columns:
                raise AssertionError("a sparse X was made dense")
            return made(self, *args, **kwargs)
        return refuse

    for cls in (sparse.csr_matrix, sparse.csc_matrix, sparse.csr_array, sparse.csc_array, sparse.coo_matrix):
        for name in ("toarray", "todense"):
            monkeypatch.setattr(cls, name, refusing(getattr(cls, name)))


ESTIMATOR_CASES = {
    "adam": dict(solver="adam", batch_size=16),
    "sgd-1-plain": dict(solver="sgd", batch_size=1, momentum=0.0, alpha=0.0, max_iter=2),
    "sgd-nesterov-weighted": dict(solver="sgd", batch_size=10, sample_weight=True),
    "adam-long-steps-early-stopping": dict(solver="adam", batch_size=120, early_stopping=True,
                                           validation_fraction=0.2, long_steps=True),
    "lbfgs": dict(solver="lbfgs", max_iter=15),
    "lbfgs-blocks-weighted": dict(solver="lbfgs", max_iter=15, sample_weight=True, lbfgs_blocks=True),
    "adam-partial_fit": dict(solver="adam", batch_size=32, partial_fit=3),
}


@pytest.mark.parametrize("kind", ["MLPClassifier", "MLPRegressor"])
@pytest.mark.parametrize("case", sorted(ESTIMATOR_CASES))
def test_estimators_fit_and_predict_a_sparse_x_of_few_values_without_making_it_dense(monkeypatch, kind, case):
    """fit, partial_fit and predict on a sparse X of 3% values: the model
    and the outputs of X made dense, to round-off in float64, and no row of
    X made dense (a text-like X of 20000 columns made dense a block at a
    time had cost 42x scikit-learn's predict)."""
    from dnnfast._estimators import _solvers
    from dnnfast._train import driver

    kw = dict(ESTIMATOR_CASES[case])
    rng = np.random.default_rng(7)
    n, m = 150, 400
    X = sparse.random(n, m, density=0.03, format="csr", random_state=7)
    X.data *= 4
    D = X.toarray()
    y = rng.integers(0, 3, n) if kind == "MLPClassifier" else rng.standard_normal((n, 2))
    w = rng.random(n) if kw.pop("sample_weight", False) else None
    calls = kw.pop("partial_fit", 0)
    if kw.pop("long_steps", False):
        monkeypatch.setattr(driver, "BLOCK_FLOPS", 1.0)  # steps in blocks of few rows (gradient_sum)
    if kw.pop("lbfgs_blocks", False):
        monkeypatch.setattr(_solvers, "LBFGS_BLOCK_FLOPS", 1.0)
    kw = dict(dict(hidden_layer_sizes=(13,), max_iter=4, random_state=0), **kw)
    models, outputs = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for data in (D, X, X.tocsc()):
            with monkeypatch.context() as patch:
                if data is not D:
                    _no_dense_copies(patch, m)
                est = getattr(dnnfast, kind)(**kw)
                if calls:
                    extra = {"classes": [0, 1, 2]} if kind == "MLPClassifier" else {}
                    for _ in range(calls):
                        est.partial_fit(data, y, sample_weight=w, **extra)
                else:
                    est.fit(data, y, sample_weight=w)
                outputs.append(est.predict_proba(data) if kind == "MLPClassifier" else est.predict(data))
            models.append(est)
    dense = models[0]
    for est, out in zip(models[1:], outputs[1:]):
        assert est.n_iter_ == dense.n_iter_
        for a, b in zip(dense.coefs_ + dense.intercepts_, est.coefs_ + est.intercepts_):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(est.loss_curve_ if hasattr(est, "loss_curve_") else est.loss_,
                                   dense.loss_curve_ if hasattr(dense, "loss_curve_") else dense.loss_, rtol=1e-10)
        np.testing.assert_allclose(out, outputs[0], rtol=1e-9, atol=1e-12)
        if kw.get("early_stopping"):
            np.testing.assert_allclose(est.validation_scores_, dense.validation_scores_, rtol=1e-9)


def test_a_non_canonical_sparse_x_is_read_as_its_dense_form_and_left_as_it_is():
    """Duplicates at one position are summed (as X made dense sums them),
    unsorted columns taken as they are; the user's matrix is not changed."""
    rng = np.random.default_rng(8)
    n, m = 80, 200
    rows = np.repeat(np.arange(n), 6)
    cols = rng.integers(0, m, rows.size)
    cols[::6] = cols[1::6]  # a duplicate in each row
    vals = rng.standard_normal(rows.size)
    X = sparse.csr_matrix((vals, (rows, cols)), shape=(n, m))  # (sums duplicates)
    perm = np.concatenate([rng.permutation(6) + 6 * i for i in range(n)])
    U = sparse.csr_matrix((vals[perm], cols[perm], np.arange(0, rows.size + 1, 6)), shape=(n, m))
    assert not U.has_canonical_format
    before = (U.data.copy(), U.indices.copy(), U.indptr.copy())
    y = rng.integers(0, 2, n)
    kw = dict(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = dnnfast.MLPClassifier(**kw).fit(X, y)
        b = dnnfast.MLPClassifier(**kw).fit(U, y)
    for p, q in zip(a.coefs_, b.coefs_):
        np.testing.assert_allclose(q, p, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.predict_proba(U), a.predict_proba(X.toarray()), rtol=1e-12, atol=1e-14)
    for x, z in zip(before, (U.data, U.indices, U.indptr)):
        assert np.array_equal(x, z)


def test_which_sparse_x_the_core_reads_as_csr():
    """At most CORE_CSR_MAX_DENSITY of the entries stored: read as CSR;
    denser, made dense in blocks (the dense X's bits; test_memory.py)."""
    limit = _rows.CORE_CSR_MAX_DENSITY
    n, m = 100, 100
    assert _rows.takes_core_csr(sparse.random(n, m, density=limit, format="csr", random_state=0))
    assert not _rows.takes_core_csr(sparse.random(n, m, density=limit + 0.01, format="csr", random_state=0))
    assert not _rows.takes_core_csr(sparse.csr_matrix((0, 5)))
    S = _rows.SparseRows(sparse.random(n, m, density=limit, format="csr", random_state=0), np.float32)
    assert isinstance(S.core_x, _core.Csr32) and S.core_x.shape == (n, m)
    assert _rows.SparseRows(sparse.random(n, m, density=0.5, format="csr", random_state=0),
                            np.float64).core_x is None


def test_data_parallel_steps_read_the_csr(monkeypatch):
    """Data-parallel sgd / adam (over MPI.COMM_SELF, this process alone):
    each batch's gradient from the CSR (gradient_sum), never its rows made
    dense; the model of the dense X to round-off."""
    pytest.importorskip("mpi4py")
    from mpi4py import MPI

    from dnnfast import distributed

    rng = np.random.default_rng(9)
    n, m = 200, 300
    X = sparse.random(n, m, density=0.05, format="csr", random_state=9)
    y, w = rng.integers(0, 3, n), rng.random(n)
    for solver, batch in (("adam", 7), ("sgd", 1), ("adam", "auto")):
        kw = dict(hidden_layer_sizes=(9,), solver=solver, batch_size=batch, max_iter=2, random_state=0)
        with warnings.catch_warnings(), distributed.Context(MPI.COMM_SELF):
            warnings.simplefilter("ignore")
            dense = dnnfast.MLPClassifier(**kw).fit(X.toarray(), y, sample_weight=w)
            with monkeypatch.context() as patch:
                _no_dense_copies(patch, m)
                fit = dnnfast.MLPClassifier(**kw).fit(X, y, sample_weight=w)
        for a, b in zip(dense.coefs_ + dense.intercepts_, fit.coefs_ + fit.intercepts_):
            np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12, err_msg=f"{solver} {batch}")
        np.testing.assert_allclose(fit.loss_curve_, dense.loss_curve_, rtol=1e-10)


def test_a_sparse_fit_allocates_no_rows_of_x(monkeypatch):
    """A sparse X's rows are read where they are: the core's workspace holds
    no gathered rows of X (rows x m_x) and its delta buffers are as wide as
    the widest layer output, not X (2 x rows x m_x: 3.4 GB for 2^20 hashed
    columns in batches of 200); the memory check before the fit counts
    neither."""
    from dnnfast import _validation

    rng = np.random.default_rng(10)
    n, m = 1100, 4096
    X = sparse.csr_matrix((rng.random(n * 5), rng.integers(0, m, n * 5), np.arange(0, n * 5 + 1, 5)),
                          shape=(n, m))
    net = dnnfast.Network([m, 4, 3], ["relu", "softmax"], dtype=np.float64, seed=0)
    Y = np.eye(3)[rng.integers(0, 3, n)]
    options = _core.TrainOptions(optimizer="sgd", learning_rate=0.01, batch_size=n)  # one batch of 1100 rows
    net._net.train_epoch(net.parameters, _rows.core_csr(X, np.float64), Y, None, np.arange(n, dtype=np.int64),
                         options)
    held = net._net.release_workspace()  # (a workspace of more rows than a predict chunk)
    assert 0 < held < n * 64 * 8, held  # Z, A, deltas, Y of 4 + 3 columns; not n x 4096 values thrice

    n, m = 2000, 1 << 20  # hashed features: the parameters are 32 MiB, a dense batch 1.6 GB
    X = sparse.csr_matrix((rng.random(n * 20), rng.integers(0, m, n * 20), np.arange(0, n * 20 + 1, 20)),
                          shape=(n, m))
    monkeypatch.setattr(_validation, "available_memory", lambda: 400 << 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, random_state=0).fit(X, np.arange(n) % 3)
    assert clf.n_iter_ == 1
    # predict reads X where it is too: its check counted 1024 rows of 2^20 values (8 GiB) a chunk
    assert clf.predict_proba(X).shape == (n, 3)


def test_the_core_reads_its_own_checked_copy_of_the_index_arrays():
    """The CSR's index arrays are checked once: the core reads its own copy
    of them, so a caller's array changed afterwards (a user's matrix
    edited in another thread during a fit) cannot move a read or a write
    outside W and its gradient (it did: a segmentation fault)."""
    net = _network("relu-softmax", np.float64)
    p, j, d = _csr()
    C = _core.Csr64(p, j, d, 300)
    before = net._net.predict(net.parameters, C)
    j[:] = 10 ** 12
    p[1:] = p[-1]
    after = net._net.predict(net.parameters, C)
    assert np.array_equal(before, after)
    G = np.empty_like(net.parameters)
    net._net.loss_and_gradient(net.parameters, C, _targets(net, 7), None, None, 0.0, G)
    assert np.isfinite(G).all()


# -- Network ------------------------------------------------------------------

# How a Network's call takes a sparse X (``rows_in_dtype``): "csr", read by the
# core as CSR (few values stored); "dense-blocks", denser and larger than a
# chunk, made dense a block of rows at a time (here every block: the chunk's
# bytes set to 1); "dense", denser and small, made dense whole.
NETWORK_PATHS = {"csr": 0.04, "dense-blocks": 0.4, "dense": 0.4}


def _network_x(path, n, m, monkeypatch, seed=0):
    if path == "dense-blocks":
        monkeypatch.setattr(_rows, "DENSE_CHUNK_BYTES", 1)
    X = _sparse_x(n, m, np.float64, seed=seed, density=NETWORK_PATHS[path])
    taken = _rows.rows_in_dtype(X, np.float64)
    assert {"csr": isinstance(taken, _rows.SparseRows) and taken.core_x is not None,
            "dense-blocks": isinstance(taken, _rows.SparseRows) and taken.core_x is None,
            "dense": isinstance(taken, np.ndarray)}[path]
    return X


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("path", sorted(NETWORK_PATHS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_network_calls_on_a_sparse_x_are_the_references(monkeypatch, dtype, path, fmt):
    """predict, cost, loss_and_gradient, gradients and forward take a SciPy
    sparse X of any format: the reference's results on X made dense (to
    round-off), predict bit for bit those of X made dense where its rows
    are made dense (the core's own chunks: 1025 rows are 1020 and 5, not
    1024 and a last one on the GEMM's few-row path, whose bits differ), and
    the sparse X left as it is."""
    net = _network("tanh-sigmoid", dtype)
    n = 1025
    X = _network_x(path, n, net.sizes[0], monkeypatch).asformat(fmt)
    kept = X.copy()
    D = X.toarray()
    Y = _targets(net, n)
    Ws, bs, acts = _ref64(net)
    Zs_ref, As_ref = reference.forward(Ws, bs, acts, D)
    Yhat = net.predict(X)
    _close(Yhat, As_ref[-1], dtype, "predict")
    if path != "csr":
        np.testing.assert_array_equal(Yhat, net.predict(D.astype(dtype)))
    _close(net.cost(X, Y), reference.loss_forward(net.loss, Y, As_ref[-1].astype(dtype)) / n, dtype, "cost")
    c, dWs, dbs, dal = reference.gradients(Ws, bs, acts, net.loss, D, Y.astype(np.float64))
    cost, G = net.loss_and_gradient(X, Y)
    _close(G, _flat_grad(net, dWs, dbs, dal), dtype, "loss_and_gradient")
    _close(cost, c, dtype, "loss_and_gradient's cost")
    got_dWs, got_dbs = net.gradients(X, Y)
    for got, want in zip(got_dWs + got_dbs, dWs + dbs):
        _close(got, want, dtype, "gradients")
    Zs, As = net.forward(X)
    np.testing.assert_array_equal(As[0], D.astype(dtype))
    for got, want in zip(Zs + As[1:], Zs_ref + As_ref[1:]):
        _close(got, want, dtype, "forward")
    assert (X != kept).nnz == 0 and X.format == fmt


def test_network_loss_and_gradient_of_a_sparse_x_in_blocks_is_the_reference(monkeypatch):
    """Over more rows than a block (gradient_block_rows): the blocks' CSR
    rows, or their rows made dense, summed as a dense X's blocks are."""
    from dnnfast._train import driver

    monkeypatch.setattr(driver, "BLOCK_FLOPS", 1.0)  # blocks of 64 rows
    net = _network("relu-softmax", np.float64)
    n = 300
    Y = _targets(net, n)
    Ws, bs, acts = _ref64(net)
    for path in ("csr", "dense-blocks"):
        with monkeypatch.context() as patch:
            X = _network_x(path, n, net.sizes[0], patch, seed=4)
            c, dWs, dbs, dal = reference.gradients(Ws, bs, acts, net.loss, X.toarray(), Y)
            cost, G = net.loss_and_gradient(X, Y)
        _close(G, _flat_grad(net, dWs, dbs, dal), np.float64, f"loss_and_gradient ({path})")
        _close(cost, c, np.float64, f"loss_and_gradient's cost ({path})")


NETWORK_FITS = {
    "sgd-1": dict(optimizer="sgd", batch_size=1, epochs=2, learning_rate=0.05),
    "adam-16-shuffled": dict(optimizer="adam", batch_size=16, epochs=3, shuffle=True, seed=3, learning_rate=0.01),
    "momentum-l2": dict(optimizer="momentum", batch_size=10, epochs=2, weight_decay=1e-3, learning_rate=0.05),
    "full-batch-long-steps": dict(optimizer="sgd", batch_size=None, epochs=3, learning_rate=0.5, long_steps=True),
}


@pytest.mark.parametrize("path", sorted(NETWORK_PATHS))
@pytest.mark.parametrize("case", sorted(NETWORK_FITS))
def test_network_fit_on_a_sparse_x_is_the_fit_on_x_made_dense(monkeypatch, case, path):
    """Network.fit of a sparse X (and sparse validation rows, with the
    accuracy on both): the parameters and history of the fit of X made
    dense, to round-off (bit for bit where the rows are made dense); where
    the core reads the CSR, no row of X is made dense."""
    from dnnfast._train import driver

    kw = dict(NETWORK_FITS[case])
    if kw.pop("long_steps", False):
        monkeypatch.setattr(driver, "BLOCK_FLOPS", 1.0)  # the full batch in blocks of 64 rows (gradient_sum)
    n, m = 150, 300
    X = _network_x(path, n, m, monkeypatch, seed=5)
    D = X.toarray()
    labels = np.random.default_rng(5).integers(0, 3, n)
    fits = []
    for data in (D, X):
        net = dnnfast.Network([m, 9, 3], ["relu", "softmax"], loss="cce", dtype=np.float64, seed=0)
        with monkeypatch.context() as patch:
            if data is X and path == "csr":
                _no_dense_copies(patch, m)
            h = net.fit(data, labels, validation_data=(data[100:], labels[100:]), metrics=["accuracy"], **kw)
        fits.append((net, h))
    (dense, hd), (net, h) = fits
    if path == "csr":
        np.testing.assert_allclose(net.parameters, dense.parameters, rtol=1e-9, atol=1e-12)
        for key in ("cost", "val_cost"):
            np.testing.assert_allclose(h[key], hd[key], rtol=1e-10)
    else:
        np.testing.assert_array_equal(net.parameters, dense.parameters)
        for key in ("cost", "val_cost"):
            assert h[key] == hd[key]
    assert h["accuracy"] == hd["accuracy"] and h["val_accuracy"] == hd["val_accuracy"]


def test_network_fit_on_a_sparse_x_names_where_it_went_non_finite():
    """on_nonfinite="raise" with a sparse X: the NonFiniteError of the
    dense X (the forward pass over X searched in chunks of its rows)."""
    X = sparse.random(40, 300, density=0.03, format="csr", random_state=2) * 1e150
    labels = np.arange(40) % 3
    errors = []
    for data in (X.toarray(), X):
        net = dnnfast.Network([300, 9, 3], ["relu", "softmax"], loss="cce", dtype=np.float64, seed=0)
        net.parameters[:] = 1e150  # Z of the first layer overflows
        with pytest.raises(dnnfast.NonFiniteError) as info:
            net.fit(data, labels, epochs=1, batch_size=8)
        errors.append((str(info.value), info.value.layer, info.value.where))
    assert errors[0] == errors[1]


def test_network_fit_on_a_sparse_x_over_mpi_is_the_local_fit():
    """Network.fit of a sparse X inside a distributed Context (COMM_SELF):
    the steps from the CSR (gradient_sum), the model of the fit in one process."""
    pytest.importorskip("mpi4py")
    from mpi4py import MPI

    from dnnfast import distributed

    X = sparse.random(120, 300, density=0.04, format="csr", random_state=6)
    labels = np.arange(120) % 3
    nets = [dnnfast.Network([300, 9, 3], ["relu", "softmax"], loss="cce", dtype=np.float64, seed=0)
            for _ in range(2)]
    kw = dict(optimizer="adam", batch_size=16, epochs=2, learning_rate=0.01)
    h0 = nets[0].fit(X.toarray(), labels, **kw)
    with distributed.Context(MPI.COMM_SELF):
        h1 = nets[1].fit(X, labels, validation_data=(X[:30], labels[:30]), **kw)
    np.testing.assert_allclose(nets[1].parameters, nets[0].parameters, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(h1["cost"], h0["cost"], rtol=1e-10)
    assert len(h1["val_cost"]) == 2


@pytest.mark.parametrize("make, error, message", [
    (lambda X: X.astype(np.complex128), TypeError, "X must have a real numeric dtype"),
    (lambda X: X[:0], ValueError, r"X is empty \(0 rows\)"),
    (lambda X: X[:, :299], ValueError, "X has 299 columns but the network takes 300 inputs"),
    (lambda X: _with_value(X, np.nan), ValueError, "X contains NaN or infinity"),
    (lambda X: _with_value(X.tocoo(), np.inf), ValueError, "X contains NaN or infinity"),
    (lambda X: _duplicate(X, 1e308), ValueError, "X contains NaN or infinity"),
    (lambda X: _with_value(X, 1e39), ValueError, "X has values too large for float32"),
])
def test_network_refuses_a_bad_sparse_x_naming_it(make, error, message):
    """Every Network call refuses a bad sparse X (or validation_data[0])
    before the core sees it, with the dense X's messages, and leaves the
    model as it was."""
    net = _network("relu-softmax", np.float32)
    X = _sparse_x(20, 300, np.float64)
    labels = np.arange(20) % 4
    bad = make(X)
    before = net.parameters.copy()
    calls = [lambda: net.predict(bad), lambda: net.cost(bad, labels), lambda: net.loss_and_gradient(bad, labels),
             lambda: net.gradients(bad, labels), lambda: net.forward(bad),
             lambda: net.fit(bad, labels, epochs=1, batch_size=4)]
    for call in calls:
        with pytest.raises(error, match=message):
            call()
    with pytest.raises(error, match=message.replace("X", r"validation_data\[0\]", 1)):
        net.fit(X, labels, epochs=1, validation_data=(bad, labels[:bad.shape[0]]))
    np.testing.assert_array_equal(net.parameters, before)


def _with_value(X, value):
    X = X.copy()
    X.data[0] = value
    return X


def _duplicate(X, value):
    """A COO X whose first position is stored twice, each ``value``: finite
    apart, their sum (X made dense) infinite."""
    X = X.tocoo()
    r, c = X.row[0], X.col[0]
    return sparse.coo_matrix((np.r_[X.data, value, value], (np.r_[X.row, r, r], np.r_[X.col, c, c])), shape=X.shape)


def _malformed(kind):
    """A SciPy sparse X of 6 rows and 8 columns, 4 values a row (half its
    entries: made dense by SciPy), whose index arrays were edited in place
    past what SciPy's constructors check."""
    X = sparse.random(6, 8, density=0.5, format="csr", random_state=3)
    if kind.startswith("csc"):
        X = X.tocsc()
    if kind.startswith("coo"):
        X = X.tocoo()
    if kind.startswith("bsr"):
        X = X.tobsr(blocksize=(2, 2))  # 3 x 4 blocks
    if kind.startswith("lil"):
        X = X.tolil()
    if kind == "csr-column-out-of-range":
        X.indices[5] = 10 ** 6
    elif kind == "csr-negative-column":
        X.indices[0] = -1
    elif kind == "csr-indptr-decreasing":
        X.indptr[2], X.indptr[3] = X.indptr[3], X.indptr[2]
    elif kind == "csr-indptr-past-the-values":
        X.indptr[-1] += 7
    elif kind == "csc-row-out-of-range":
        X.indices[2] = 6
    elif kind == "coo-row-out-of-range":
        X.row[1] = 99
    elif kind == "coo-column-out-of-range":
        X.col[0] = 8
    elif kind == "bsr-block-column-out-of-range":
        X.indices[0] = 4
    elif kind == "lil-column-out-of-range":
        row = next(i for i, r in enumerate(X.rows) if r)
        X.rows[row][-1] = 10 ** 8
    elif kind == "csr-2-d-indices":
        X = sparse.csr_matrix((6, 8))
        X.indices = np.zeros((2, 2), dtype=np.int32)
    return X


MALFORMED = ["csr-column-out-of-range", "csr-negative-column", "csr-indptr-decreasing",
             "csr-indptr-past-the-values", "csc-row-out-of-range", "coo-row-out-of-range",
             "coo-column-out-of-range", "bsr-block-column-out-of-range", "lil-column-out-of-range",
             "csr-2-d-indices"]


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_sparse_x_whose_index_arrays_are_malformed_is_refused_naming_it(kind):
    """SciPy's toarray and tocsr trust the index arrays and read and write
    out of bounds: Network's calls and the estimators' fit and predict
    check them first (toarray of a column index of 10**6 was a
    segmentation fault; the estimators' predict returned an answer)."""
    bad = _malformed(kind)
    labels = np.arange(6) % 3
    net = dnnfast.Network([8, 5, 3], ["relu", "softmax"], dtype=np.float64, seed=0)
    clf = dnnfast.MLPClassifier((5,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitted = dnnfast.MLPClassifier((5,), max_iter=2, random_state=0).fit(np.eye(6, 8), labels)
    calls = {"Network.predict": lambda: net.predict(bad), "Network.fit": lambda: net.fit(bad, labels),
             "Network validation_data": lambda: net.fit(np.eye(6, 8), labels, validation_data=(bad, labels)),
             "MLPClassifier.fit": lambda: clf.fit(bad, labels), "MLPClassifier.predict": lambda: fitted.predict(bad)}
    for what, call in calls.items():
        name = r"validation_data\[0\]" if "validation" in what else "X"
        with pytest.raises(ValueError, match=rf"^{name} is not a valid sparse matrix"):
            call()


def test_a_sparse_x_of_longdouble_values_is_taken_as_a_dense_one():
    """A longdouble sparse X (SciPy has them) is checked and taken as the
    dense longdouble X is, not refused by a raw TypeError of the core."""
    D = np.random.default_rng(4).standard_normal((7, 6)).astype(np.longdouble)
    D[D < 0.3] = 0
    labels = np.arange(7) % 3
    net = dnnfast.Network([6, 5, 3], ["relu", "softmax"], dtype=np.float64, seed=0)
    assert net.predict(sparse.csr_matrix(D)).tobytes() == net.predict(D).tobytes()
    assert net.cost(sparse.csr_matrix(D), labels) == net.cost(D, labels)
    D[2, 3] = np.inf
    with pytest.raises(ValueError, match="^X contains NaN or infinity"):
        net.predict(sparse.csr_matrix(D))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_predict_of_a_sparse_x_made_dense_in_chunks_has_the_dense_bits(monkeypatch, dtype):
    """The chunks a sparse X is made dense in are the core's own
    (``_core.chunk_rows``): 1025 rows in plain chunks of 1024 left a last
    row on the GEMM's few-row path, whose long sums round otherwise."""
    monkeypatch.setattr(_rows, "DENSE_CHUNK_BYTES", 1)
    X = sparse.random(1025, 2000, density=0.2, format="csr", random_state=1, dtype=dtype)
    net = dnnfast.Network([2000, 16, 3], ["relu", "softmax"], dtype=dtype, seed=0)
    assert net.predict(X).tobytes() == net.predict(X.toarray()).tobytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = dnnfast.MLPClassifier((16,), max_iter=1, random_state=0).fit(X[:50], np.arange(50) % 3)
    assert clf.predict_proba(X).tobytes() == clf.predict_proba(X.toarray()).tobytes()
    assert [(i0, i1) for i0, i1 in _rows.chunks(1025)] == [(0, 1020), (1020, 1025)]
