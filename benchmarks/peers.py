"""The peers: the same training and prediction written for each library.

Each trainer factory ``TRAINERS[peer](workload, seed)`` returns
``fit(X, Y, epochs)``, which trains one freshly initialised network with
plain mini-batch SGD (no momentum, no weight decay), the learning rate, batch
size and per-epoch shuffling of the workload. ``Y`` is integer class labels.
A trainer may also give ``fit.compile(X, Y, epochs) -> seconds``: work that
happens once per shape (JAX's tracing and XLA compilation), which the worker
runs and reports apart from the timed fits; and ``fit(...)`` may return a
dict of figures about the run (JAX: the mean loss of the first and the last
tenth of its mini-batches, so a report shows the epoch learned).
Each predictor factory ``PREDICTORS[peer](workload, X, Y)`` returns
``predict(x) -> probabilities`` (NumPy in, NumPy out, as a user calls it).
"""
import time
import warnings

import numpy as np


def make_data(rows, m_x, m_y, dtype, seed=0):
    """Synthetic classification data: Gaussian X, labels from a random linear teacher."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, m_x), dtype=np.float32).astype(dtype)
    teacher = rng.standard_normal((m_x, m_y), dtype=np.float32)
    Y = np.argmax(X.astype(np.float32) @ teacher, axis=1).astype(np.int64)
    return np.ascontiguousarray(X), Y


# --------------------------------------------------------------------------- dnnfast and reference

def _network(module, wl, seed):
    return module.Network(sizes=wl["sizes"], activations=wl["activations"], loss=wl["loss"],
                          dtype=wl["dtype"], seed=seed)


def train_dnnfast(wl, seed):
    import dnnfast
    net = _network(dnnfast, wl, seed)

    def fit(X, Y, epochs):
        net.fit(X, Y, epochs=epochs, batch_size=wl["batch_size"], learning_rate=wl["learning_rate"],
                shuffle=True)
    return fit


def train_reference(wl, seed):
    import dnnfast.reference
    net = _network(dnnfast.reference, wl, seed)

    def fit(X, Y, epochs):
        net.fit(X, Y, epochs=epochs, batch_size=wl["batch_size"], learning_rate=wl["learning_rate"],
                shuffle=True)
    return fit


def predict_dnnfast(wl, X, Y):
    import dnnfast
    return _network(dnnfast, wl, 0).predict


def predict_reference(wl, X, Y):
    import dnnfast.reference
    return _network(dnnfast.reference, wl, 0).predict


# --------------------------------------------------------------------------- PyTorch

def _torch_model(wl, seed):
    import torch
    from torch import nn
    torch.manual_seed(seed)
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    dtype = {"float32": torch.float32, "float64": torch.float64}[wl["dtype"]]
    layers = []
    sizes, acts = wl["sizes"], wl["activations"]
    for l in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[l], sizes[l + 1], dtype=dtype))
        if l < len(sizes) - 2:
            layers.append(act[acts[l]]())
    # The softmax output lives in the loss: CrossEntropyLoss(logits) is
    # softmax + cce averaged over the batch, the same C as dnnfast's.
    assert acts[-1] == "softmax" and wl["loss"] == "cce"
    return nn.Sequential(*layers)


def train_torch(wl, seed):
    import torch
    from torch import nn
    model = _torch_model(wl, seed)
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=wl["learning_rate"], momentum=0.0, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)

    def fit(X, Y, epochs):
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
        n = len(Xt)
        bs = wl["batch_size"] or n
        model.train()
        for _ in range(epochs):
            perm = torch.randperm(n, generator=gen)
            for i in range(0, n, bs):
                idx = perm[i:i + bs]
                opt.zero_grad()
                loss = loss_fn(model(Xt[idx]), Yt[idx])
                loss.backward()
                opt.step()
    return fit


def predict_torch(wl, X, Y):
    import torch
    model = _torch_model(wl, 0).eval()

    def predict(x):
        with torch.inference_mode():
            return torch.softmax(model(torch.from_numpy(x)), dim=1).numpy()
    return predict


# --------------------------------------------------------------------------- scikit-learn

def _sklearn_model(wl, seed, epochs, n):
    from sklearn.neural_network import MLPClassifier
    assert wl["activations"][-1] == "softmax" and wl["loss"] == "cce"
    assert all(a == wl["activations"][0] for a in wl["activations"][:-1])
    # tol=0 with n_iter_no_change > max_iter: never stops before max_iter.
    return MLPClassifier(hidden_layer_sizes=tuple(wl["sizes"][1:-1]), activation=wl["activations"][0],
                         solver="sgd", alpha=0.0, batch_size=wl["batch_size"] or n,
                         learning_rate="constant", learning_rate_init=wl["learning_rate"],
                         max_iter=epochs, shuffle=True, random_state=seed, tol=0.0, momentum=0.0,
                         nesterovs_momentum=False, early_stopping=False, n_iter_no_change=epochs + 1)


def train_sklearn(wl, seed):
    from sklearn.exceptions import ConvergenceWarning

    def fit(X, Y, epochs):
        model = _sklearn_model(wl, seed, epochs, len(X))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, Y)
    return fit


def predict_sklearn(wl, X, Y):
    from sklearn.exceptions import ConvergenceWarning
    model = _sklearn_model(wl, 0, 1, len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, Y)
    return model.predict_proba


# --------------------------------------------------------------------------- JAX

_JAX_EPOCHS = {}  # (workload, rows) -> compiled epoch: compiled once per process, used by every fresh network


def _jax_epoch(wl, n):
    """One epoch as one XLA program: shuffle, then a ``lax.scan`` of SGD steps
    over the full mini-batches, then one step on the remainder if ``n`` is not
    a multiple of the batch size. softmax + cce averaged over the batch, as
    the other peers. Returns ``epoch(params, X, Y, key) -> (params, losses)``."""
    import jax
    import jax.numpy as jnp

    bs = wl["batch_size"] or n
    lr = wl["learning_rate"]
    acts = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}
    hidden = [acts[a] for a in wl["activations"][:-1]]
    assert wl["activations"][-1] == "softmax" and wl["loss"] == "cce"
    n_full, tail = divmod(n, bs)

    def loss(params, x, y):
        a = x
        for (w, b), f in zip(params[:-1], hidden):
            a = f(a @ w + b)
        w, b = params[-1]
        logp = jax.nn.log_softmax(a @ w + b)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    grad = jax.value_and_grad(loss)

    def step(params, batch):
        x, y = batch
        c, g = grad(params, x, y)
        return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g), c

    def epoch(params, X, Y, key):
        perm = jax.random.permutation(key, n)
        Xs, Ys = X[perm], Y[perm]
        head = n_full * bs
        params, losses = jax.lax.scan(
            step, params, (Xs[:head].reshape(n_full, bs, -1), Ys[:head].reshape(n_full, bs)))
        if tail:
            params, c = step(params, (Xs[head:], Ys[head:]))
            losses = jnp.concatenate([losses, c[None]])
        return params, losses

    # The parameters are donated: the step updates them in place, as the
    # other peers do, instead of allocating a new set per epoch.
    return jax.jit(epoch, donate_argnums=0)


def train_jax(wl, seed):
    import jax
    if wl["dtype"] == "float64":
        # Must precede the first array: JAX makes float32 otherwise.
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    dtype = jnp.dtype(wl["dtype"])
    # PyTorch's nn.Linear initialisation, uniform(+-1/sqrt(m_in)) for W and b.
    rng = np.random.default_rng(seed)
    params = []
    for m_in, m_out in zip(wl["sizes"][:-1], wl["sizes"][1:]):
        r = 1.0 / np.sqrt(m_in)
        params.append((jnp.asarray(rng.uniform(-r, r, (m_in, m_out)), dtype=dtype),
                       jnp.asarray(rng.uniform(-r, r, m_out), dtype=dtype)))
    state = {"params": params, "key": jax.random.PRNGKey(seed)}
    spec = repr(sorted((k, v) for k, v in wl.items()))

    def compiled(X, Y):
        k = (spec, len(X))
        if k not in _JAX_EPOCHS:
            _JAX_EPOCHS[k] = _jax_epoch(wl, len(X)).lower(
                state["params"], jnp.asarray(X), jnp.asarray(Y), state["key"]).compile()
        return _JAX_EPOCHS[k]

    def fit(X, Y, epochs):
        epoch = compiled(X, Y)
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)  # host to device once, as a user would
        losses = []
        for _ in range(epochs):
            state["key"], sub = jax.random.split(state["key"])
            state["params"], c = epoch(state["params"], Xj, Yj, sub)
            losses.append(c)
        jax.block_until_ready(state["params"])
        c = np.concatenate([np.asarray(l) for l in losses])
        tenth = max(1, len(c) // 10)
        return {"loss_first": float(c[:tenth].mean()), "loss_last": float(c[-tenth:].mean())}

    def compile_seconds(X, Y, epochs):
        t0 = time.perf_counter()
        compiled(X, Y)
        return time.perf_counter() - t0

    fit.compile = compile_seconds
    return fit


TRAINERS = {"reference": train_reference, "torch": train_torch, "sklearn": train_sklearn,
            "jax": train_jax, "dnnfast": train_dnnfast}
PREDICTORS = {"reference": predict_reference, "torch": predict_torch, "sklearn": predict_sklearn,
              "dnnfast": predict_dnnfast}
