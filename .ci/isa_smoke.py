"""Uses the installed dnnfast the way a new user would; run by check_isa.sh
under qemu-x86_64 -cpu MODEL, so that every instruction is checked against
that CPU model.

    python .ci/isa_smoke.py EXPECTED_KERNEL   (generic | avx2 | avx512)
"""
import sys
import warnings

import numpy as np

import dnnfast
from dnnfast import _core

expected = sys.argv[1]
name = _core.gemm_kernel_name()
print(f"isa_smoke: kernel {name} ({_core.gemm_kernel()}); dnnfast {dnnfast.__version__}, numpy {np.__version__}")
assert name == expected, f"kernel table {name!r}, expected {expected!r} on this CPU model"

rng = np.random.default_rng(0)
X = rng.standard_normal((64, 8))
y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
for dtype in ("float32", "float64"):
    net = dnnfast.Network(sizes=[8, 16, 2], activations=["relu", "softmax"], loss="cce", dtype=dtype, seed=0)
    hist = net.fit(X, y, epochs=5, batch_size=16, learning_rate=0.1)
    P = net.predict(X)
    assert P.shape == (64, 2) and P.dtype == np.dtype(dtype) and np.all(np.isfinite(P))
    assert hist.cost[-1] < hist.cost[0], hist.cost
    # The same forward pass in plain NumPy (dnnfast.reference).
    ref = dnnfast.reference.Network(sizes=[8, 16, 2], activations=["relu", "softmax"], loss="cce",
                                     dtype=dtype, seed=0)
    for w, b, w_ref, b_ref in zip(net.weights, net.biases, ref.weights, ref.biases):
        w_ref[:] = w
        b_ref[:] = b
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(P, ref.predict(X), rtol=tol, atol=tol)
    print(f"isa_smoke: Network {dtype}: cost {hist.cost[0]:.4f} -> {hist.cost[-1]:.4f}, predict matches reference")

# The transcendental activations' vector code (the table follows the GEMM's)
# against NumPy over a sweep, both dtypes: an emulator that mis-executes one
# of its instructions shows here (the float64 avx2 table's vgatherqpd did
# under qemu 7.2).
acts = {a[0]: a[1] for a in _core.ACTIVATIONS}
z = np.linspace(-30, 30, 1001)
want = {"tanh": np.tanh(z), "sigmoid": 1 / (1 + np.exp(-z)), "arctan": np.arctan(z),
        "softplus": np.logaddexp(0, z), "elu": np.where(z > 0, z, np.expm1(np.minimum(z, 0)))}
for dtype, tol in (("float32", 1e-6), ("float64", 1e-14)):
    Z = np.ascontiguousarray(z.astype(dtype).reshape(7, -1)[:, :140])
    for name, w in want.items():
        alpha = np.ones(1, dtype) if name == "elu" else np.zeros(0, dtype)
        got = _core.activation_forward(acts[name], Z, alpha)
        np.testing.assert_allclose(got, w.reshape(7, -1)[:, :140], rtol=tol, atol=tol, err_msg=f"{name} {dtype}")
print("isa_smoke: tanh, sigmoid, arctan, softplus, elu match NumPy in both dtypes")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # not converged after the few epochs emulation affords
    clf = dnnfast.MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.05, max_iter=30,
                                random_state=0).fit(X, y)
acc = (clf.predict(X) == y).mean()
assert acc > 0.8, acc
print(f"isa_smoke: MLPClassifier fit: training accuracy {acc:.2f}")
print("isa_smoke: OK")
