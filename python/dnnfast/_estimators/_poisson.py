"""Poisson regression (exp output) in NumPy.

The C++ core has no exp activation and no Poisson loss, so
``MLPRegressor(loss="poisson")`` trains on this small NumPy network instead.
It has the core network's interface (``layout``, ``predict``, ``cost``,
``loss_and_gradient``, ``train_epoch``) and flat parameter layout, and computes
what scikit-learn computes: output ``exp(Z)``, data loss
``sum_j average_i w_i (y log(y / ŷ) - y + ŷ)``, and output delta
``w_i (ŷ - y) / sum(w)`` (the canonical link).
"""
from __future__ import annotations

import numpy as np

from .. import reference


def _xlogy(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x == 0, 0.0, x * np.log(np.where(x == 0, 1.0, y)))


class PoissonNetwork:
    def __init__(self, sizes, specs, dtype):
        self.sizes, self.specs, self.dtype = list(sizes), list(specs), np.dtype(dtype)
        self._layout, off = [], 0
        for m_in, m_out, s in zip(sizes[:-1], sizes[1:], specs):
            lay = {"m_in": m_in, "m_out": m_out, "w_offset": off, "b_offset": off + m_in * m_out}
            off += m_in * m_out + m_out
            lay["alpha_offset"] = off if s.per_unit else None
            off += m_out if s.per_unit else 0
            self._layout.append(lay)
        self.num_params = off

    def layout(self):
        return [dict(l) for l in self._layout]

    def _views(self, P):
        out = []
        for l, s in zip(self._layout, self.specs):
            W = P[l["w_offset"]:l["w_offset"] + l["m_in"] * l["m_out"]].reshape(l["m_in"], l["m_out"])
            b = P[l["b_offset"]:l["b_offset"] + l["m_out"]]
            a = P[l["alpha_offset"]:l["alpha_offset"] + l["m_out"]] if s.per_unit else (s.param if s.has_param else None)
            out.append((W, b, a))
        return out

    def _forward(self, P, X):
        As, Zs = [X], []
        views = self._views(P)
        for i, ((W, b, a), s) in enumerate(zip(views, self.specs)):
            Z = As[-1] @ W + b
            Zs.append(Z)
            if i == len(views) - 1:
                As.append(np.exp(Z))
            else:
                As.append(reference.activation_forward(s.name, Z, a).astype(P.dtype, copy=False))
        return Zs, As

    def predict(self, P, X):
        return self._forward(P, X)[1][-1]

    @staticmethod
    def _data_loss(Y, Yhat, w):
        per = _xlogy(Y, Y / Yhat) - Y + Yhat
        return float(np.average(per, weights=w, axis=0).sum())

    def cost(self, P, X, Y, w=None):
        return self._data_loss(Y, self.predict(P, X), w)

    def loss_and_gradient(self, P, X, Y, w, rows, l2, G):
        if rows is not None:
            X, Y, w = X[rows], Y[rows], (None if w is None else w[rows])
        Zs, As = self._forward(P, X)
        data = self._data_loss(Y, As[-1], w)
        denom = X.shape[0] if w is None else float(w.sum())
        inv = 1.0 / denom if denom > 0 else 0.0
        views = self._views(P)
        gviews = self._views(G)
        delta = As[-1] - Y
        if w is not None:
            delta = delta * w[:, None]
        sq = 0.0
        for i in range(len(views) - 1, -1, -1):
            W, _, _ = views[i]
            dW, db, da = gviews[i]
            dW[...] = (As[i].T @ delta + l2 * W) * inv
            db[...] = delta.sum(axis=0) * inv
            sq += float(np.dot(W.ravel(), W.ravel()))
            if i == 0:
                break
            s = self.specs[i - 1]
            dA = delta @ W.T
            if s.per_unit:
                da[...] = reference.prelu_alpha_backward(Zs[i - 1], dA) * inv
            delta = reference.activation_backward(s.name, Zs[i - 1], As[i], dA, views[i - 1][2])
        penalty = 0.5 * l2 * sq * inv if l2 > 0 else 0.0
        return data, penalty

    def train_epoch(self, P, X, Y, w, order, batch, kind, lr, momentum, beta1, beta2, epsilon, l2, s1, s2, t):
        G = np.empty_like(P)
        cost_sum = pen_sum = 0.0
        updates = 0
        for b0 in range(0, order.shape[0], batch):
            idx = order[b0:b0 + batch]
            data, pen = self.loss_and_gradient(P, X, Y, w, idx, l2, G)
            if kind == 0:
                P -= lr * G
            elif kind in (1, 2):
                s1[...] = momentum * s1 - lr * G
                P += (momentum * s1 - lr * G) if kind == 2 else s1
            else:
                t[0] += 1
                s1[...] = beta1 * s1 + (1 - beta1) * G
                s2[...] = beta2 * s2 + (1 - beta2) * G ** 2
                lr_t = lr * np.sqrt(1 - beta2 ** t[0]) / (1 - beta1 ** t[0])
                P -= lr_t * s1 / (np.sqrt(s2) + epsilon)
            cost_sum += data * idx.shape[0]
            pen_sum += pen * idx.shape[0]
            updates += 1
        return cost_sum, pen_sum, updates
