"""The fitted polynomial coefficients of cpp/nn/vmath_impl.hpp.

    python tools/fit_vmath.py        # a few minutes (Decimal arithmetic; mpmath for float64 atan)

Weighted near-minimax fits (Lawson's iteratively reweighted least squares on
a dense Chebyshev grid), the target functions evaluated to 50 digits with
Python's decimal module, the weights those of the error that matters (|r| for
expm1's relative error, w for log, z for atan: the polynomial's error is
scaled by them in the result). For each function, the lowest degree whose
weighted error is below 2^-27 (a quarter ulp). float64 expm1 and log use
Taylor series (see the header): fitting to 2^-56 needs more than float64
least squares. float64 atan, whose Taylor series would need about 20 terms
on |t| <= tan(pi/8), is a Chebyshev fit done in 50-digit arithmetic by
mpmath (a development tool only, not a dependency of dnnfast): the lowest
degree whose weighted error z |P - P*|, P evaluated by Horner in float64,
is below 2^-55 on a grid of the interval.
"""
import numpy as np
from decimal import Decimal as D, getcontext
getcontext().prec = 60

def dexp(x):
    x = D(x); s = D(1); t = D(1); k = 1
    while True:
        t = t * x / k; s += t; k += 1
        if abs(t) < D(10) ** -50: return s
def datanh(s):
    s = D(s); w = s * s; t = s; tot = D(0); k = 1
    while True:
        term = t / k; tot += term; t *= w; k += 2
        if abs(term) < D(10) ** -50: return tot
def datan(t):
    t = D(t); w = t * t; p = t; tot = D(0); k = 1; sg = 1
    while True:
        term = p / k; tot += sg * term; p *= w; k += 2; sg = -sg
        if abs(term) < D(10) ** -50: return tot

def fit(g, wfun, a, b, deg, N=3000, iters=60):
    x = (a + b) / 2 + (b - a) / 2 * np.cos(np.pi * (np.arange(N) + 0.5) / N)
    y = np.array([float(g(xi)) for xi in x])
    w = np.array([wfun(xi) for xi in x])
    # basis: scaled monomials to keep conditioning sane
    sc = max(abs(a), abs(b))
    V = np.vander(x / sc, deg + 1, increasing=True)
    u = np.ones(N) / N
    for _ in range(iters):
        sw = np.sqrt(u) * w
        c, *_ = np.linalg.lstsq(V * sw[:, None], y * sw, rcond=None)
        e = np.abs(V @ c - y) * w
        u = u * e; u /= u.sum()
    c = c / sc ** np.arange(deg + 1)
    return c, e.max()

def show(name, c, err, dt):
    cs = [repr(float(np.float32(v))) + "f" if dt == 'f' else repr(float(v)) for v in c]
    print(name, "maxerr(weighted)=%.3g" % err, "[" + ", ".join(cs) + "]")

# expm1: e^r - 1 = r + r^2 P(r), |r| <= 0.35 ; weight |r| (relative error of expm1)
gE = lambda r: (dexp(r) - 1 - D(r)) / (D(r) * D(r)) if r != 0 else D(0.5)
# log: 2 atanh(s) = 2s + s w R(w), w = s^2 <= 0.1716^2
gL = lambda w: (2 * datanh(D(w).sqrt()) - 2 * D(w).sqrt()) / (D(w).sqrt() * D(w)) if w > 0 else D(2) / 3
# atan: atan t = t + t z P(z), z = t^2 <= 0.4143^2
gA = lambda z: (datan(D(z).sqrt()) - D(z).sqrt()) / (D(z).sqrt() * D(z)) if z > 0 else D(-1) / 3
smax = (2 ** 0.5 - 1) / (2 ** 0.5 + 1) * 1.001
tmax = 0.41422 * 1.001
for dt, tgt in (('f', 2.0 ** -27),):
    for name, g, wf, a, b in (("expm1", gE, abs, -0.35, 0.35), ("log", gL, lambda w: w / 2, 0.0, smax ** 2),
                              ("atan", gA, lambda z: z, 0.0, tmax ** 2)):
        for deg in range(1, 20):
            c, err = fit(g, wf, a, b, deg)
            if err < tgt: break
        show(dt + " " + name + " deg%d" % deg, c, err, dt)


def fit_atan64():
    import mpmath as mp  # development tool only
    mp.mp.dps = 50
    zmax = (mp.mpf(tmax)) ** 2

    def g(z):
        if z == 0:
            return mp.mpf(-1) / 3
        t = mp.sqrt(z)
        return (mp.atan(t) - t) / (t * z)
    for deg in range(6, 16):
        poly = mp.chebyfit(g, [0, zmax], deg + 1)
        c = [float(v) for v in poly[::-1]]  # increasing powers of z
        worst = 0.0
        for z in np.linspace(0.0, float(zmax), 1001):
            p = 0.0
            for ci in reversed(c):
                p = p * z + ci
            worst = max(worst, float(abs(mp.mpf(p) - g(mp.mpf(z))) * z))
        if worst < 2.0 ** -55:
            show("d atan deg%d" % deg, c, worst, 'd')
            return


def exp2_tables():
    """kExp2J16 / kExp2J16Lo: 2^(j/16) = hi + lo, hi correctly rounded to
    the dtype, lo the rest rounded (exp's table reduction)."""
    for dt, np_t in (('f', np.float32), ('d', np.float64)):
        hi, lo = [], []
        for j in range(16):
            v = D(2) ** (D(j) / 16)
            h = np_t(float(v))  # float() rounds the 60 digits once; float32 may round twice:
            h = min((np.nextafter(h, np_t(0)), h, np.nextafter(h, np_t(2))), key=lambda c: abs(D(float(c)) - v))
            hi.append(float(h).hex())
            lo.append(float(np_t(float(v - D(float(h))))).hex())
        print(dt, "exp2 hi", hi)
        print(dt, "exp2 lo", lo)


exp2_tables()
fit_atan64()
