"""Fuzz the public input checks (``dnnfast._validation`` behind ``Network``):
arrays of any dtype, shape, layout and value, and odd scalar arguments, go to
``fit``, ``predict``, ``cost``, ``forward``, ``gradients`` and the weight
setters. Each call must return or raise ValueError / TypeError -- never
another exception, never a crash in the C++ core.

    pip install atheris
    python tools/fuzz_validation.py -runs=100000

Extra arguments go to libFuzzer (``-max_len``, a corpus directory, ...).
"""
from __future__ import annotations

import sys
import warnings

import atheris
import numpy as np

with atheris.instrument_imports():  # coverage feedback from the checks themselves
    import dnnfast

warnings.simplefilter("ignore")

_DTYPES = [np.float64, np.float32, np.float16, np.longdouble, np.int8, np.int16, np.int32, np.int64, np.uint8,
           np.uint64, np.bool_, np.complex64, np.complex128, object, "U3", "S2", "datetime64[s]", "timedelta64[s]",
           [("a", "f8"), ("b", "i4")], ">f8", ">f4"]
_SPECIAL = [0.0, -0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e300, -1e300, 3.5e38, 1e-320, 2**63, -(2**63)]
_NETS = [
    dnnfast.Network([3, 4, 2], ["relu", "softmax"], loss="cce", dtype="float32", seed=0),
    dnnfast.Network([3, 2], ["prelu"], loss="sse", dtype="float64", seed=0),
    dnnfast.Network([3, 1], ["sigmoid"], loss="bce", dtype="float64", seed=0),
    dnnfast.Network([3, 5, 2], ["tanh", "identity"], loss="mse", dtype="float32", seed=0),
]


def _shape(fdp, n, m):
    if fdp.ConsumeBool():  # half the time the shape that fits: (n, m), or (n,) labels
        return (n, m) if fdp.ConsumeIntInRange(0, 3) else (n,)
    return tuple(fdp.ConsumeIntInRange(0, 6) for _ in range(fdp.ConsumeIntInRange(0, 3)))


def _array(fdp, n, m):
    """An array (or, sometimes, a list or scalar) built from the fuzzer's bytes."""
    shape = _shape(fdp, n, m)
    size = int(np.prod(shape)) if shape else 1
    how = fdp.ConsumeIntInRange(0, 4)
    if how == 0:    # raw bytes reinterpreted: every bit pattern, NaNs and infinities included
        dtype = np.dtype(fdp.PickValueInList([np.float64, np.float32, np.float16, np.int64, np.uint8, np.bool_]))
        raw = fdp.ConsumeBytes(size * dtype.itemsize)
        raw = raw + bytes(size * dtype.itemsize - len(raw))
        a = np.frombuffer(raw, dtype=dtype).reshape(shape)
        if dtype == np.bool_:
            a = a.view(np.uint8).astype(bool)
    elif how == 1:  # special values
        vals = [fdp.PickValueInList(_SPECIAL) for _ in range(size)]
        with np.errstate(all="ignore"):
            a = np.array(vals, dtype=np.float64).reshape(shape)
    elif how == 2:  # any dtype, cast from small numbers
        dtype = fdp.PickValueInList(_DTYPES)
        base = np.arange(size, dtype=np.int64).reshape(shape) % 3
        try:
            a = base.astype(dtype)
        except (TypeError, ValueError):
            a = base.astype(object)
    elif how == 3:  # ordinary values: the calls that should succeed
        a = np.linspace(-1, 1, size).reshape(shape).astype(fdp.PickValueInList([np.float32, np.float64, np.int64]))
    else:           # not an ndarray at all
        choice = fdp.ConsumeIntInRange(0, 5)
        return [None, "abc", 3.0, [[1.0, 2.0], [3.0]], [[1, 2, 3]] * 2, {"a": 1}][choice]
    a = np.array(a)  # 0-d arithmetic gives NumPy scalars: make every case an ndarray
    layout = fdp.ConsumeIntInRange(0, 3)
    if layout == 1 and a.ndim >= 1:
        a = np.asfortranarray(a)
    elif layout == 2 and a.ndim >= 1 and a.shape[0] > 1:
        a = a[::2]                      # strided
    elif layout == 3:
        a = a.copy()
        a.flags.writeable = False       # read-only input
    return a


def _scalar(fdp):
    return fdp.PickValueInList([None, 0, 1, 2, -1, 7, 2**40, 0.5, 1e-3, np.nan, np.inf, -0.1, 2.0, True, "1",
                                np.int64(3), np.float32(0.1), 3.0])


def TestOneInput(data):
    fdp = atheris.FuzzedDataProvider(data)
    net = _NETS[fdp.ConsumeIntInRange(0, len(_NETS) - 1)]
    n = fdp.ConsumeIntInRange(1, 9)
    X = _array(fdp, n, net.sizes[0])
    Y = _array(fdp, n, net.sizes[-1])
    op = fdp.ConsumeIntInRange(0, 6)
    before = net.parameters.copy()
    try:
        if op == 0:
            net.predict(X)
        elif op == 1:
            odd = fdp.ConsumeBool()  # odd scalar arguments, or ordinary ones
            net.fit(X, Y, epochs=fdp.PickValueInList([0, 1, 2, -1, 1.5, None]) if odd else 1,
                    batch_size=_scalar(fdp) if odd else fdp.PickValueInList([None, 1, 2, 4]),
                    learning_rate=_scalar(fdp) if odd else 0.1, shuffle=fdp.ConsumeBool(),
                    seed=fdp.PickValueInList([None, 0, 1]))
        elif op == 2:
            net.cost(X, Y)
        elif op == 3:
            net.forward(X)
        elif op == 4:
            net.gradients(X, Y)
        elif op == 5:
            net.weights = [X] + [w for w in net.weights[1:]]
        else:
            net.biases = [Y] + [b for b in net.biases[1:]]
    except (ValueError, TypeError):
        pass
    finally:
        net.parameters[...] = before  # every input starts from the same network


def main():
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
