"""The peers: the same training and prediction written for each library.

Each trainer factory ``TRAINERS[peer](workload, seed)`` returns
``fit(X, Y, epochs)``, which trains one freshly initialised network with
plain mini-batch SGD (no momentum, no weight decay), the learning rate, batch
size and per-epoch shuffling of the workload. ``Y`` is integer class labels.
Each predictor factory ``PREDICTORS[peer](workload, X, Y)`` returns
``predict(x) -> probabilities`` (NumPy in, NumPy out, as a user calls it).
"""
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


TRAINERS = {"reference": train_reference, "torch": train_torch, "sklearn": train_sklearn,
            "dnnfast": train_dnnfast}
PREDICTORS = {"reference": predict_reference, "torch": predict_torch, "sklearn": predict_sklearn,
              "dnnfast": predict_dnnfast}
