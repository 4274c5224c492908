#include "nn/losses.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "nn/activations.hpp"  // kElementwiseMinWork
#include "threads.hpp"

namespace dnnfast {

namespace {

template <class T>
inline T clip01(T p) {
    const T eps = std::numeric_limits<T>::epsilon();
    return std::min(std::max(p, eps), T(1) - eps);
}

template <class T>
inline T clip_positive(T p) { return std::max(p, std::numeric_limits<T>::epsilon()); }

// J_i for one row of sse, mse or cce.
template <class T>
inline double row_loss(Loss loss, const T* y, const T* p, size_t n) {
    double s = 0;
    switch (loss) {
        case Loss::sse:
            for (size_t j = 0; j < n; ++j) { const double d = double(p[j]) - double(y[j]); s += d * d; }
            return 0.5 * s;
        case Loss::mse:
            for (size_t j = 0; j < n; ++j) { const double d = double(p[j]) - double(y[j]); s += d * d; }
            return s / double(n);
        case Loss::cce: {
            // The entries with y != 0, a chunk at a time through the vector
            // log (vmath.hpp), then summed in column order as before.
            const auto vlog = active_vmath().get<double>().log;
            double q[64], yy[64];
            size_t c = 0;
            for (size_t j = 0; j < n; ++j) {
                if (y[j] != T(0)) { q[c] = double(clip01(p[j])); yy[c] = double(y[j]); ++c; }
                if (c == 64 || (j + 1 == n && c > 0)) {
                    vlog(q, q, c);
                    for (size_t k = 0; k < c; ++k) s -= yy[k] * q[k];
                    c = 0;
                }
            }
            return s;
        }
        case Loss::bce:
        case Loss::poisson:
            break;  // bce_rows_loss, poisson_rows_loss
    }
    return s;
}

// The vector log's buffers hold kLogBuf entries; cce rows up to kNarrow wide
// are gathered many rows a buffer (rows_loss).
constexpr size_t kNarrow = 64, kLogBuf = 256;

// sum over rows [i0, i1) of w_i J_i, the rows added in order, with J_i's logs
// from the vector log (vmath.hpp) kLogBuf entries at a time: as many whole
// rows as fit in a buffer, or a row wider than it one column chunk at a time.
// fill(i, j, c) puts entry (i, j)'s log arguments in slot c, logs(c) takes
// the logs of slots [0, c), and add(r, i, j, k) adds entry (i, j)'s term, from
// slot k, into its row's sum r. Each row's terms are summed in column order
// however the row was cut, and the vector log computes each lane alike
// wherever it sits, so a row's value has the bits it would have from a
// buffer as large as the row. Two libm calls per entry cost more than the
// vector log's lanes (BENCHMARKS.md, "Measurements behind the code":
// vlog_rows_loss).
template <class T, class Fill, class Logs, class Add>
double vlog_rows_loss(size_t i0, size_t i1, size_t n, const T* w, Fill fill, Logs logs, Add add) {
    double s = 0;
    if (n <= kLogBuf) {  // whole rows, as many as fit
        const size_t rows = kLogBuf / std::max<size_t>(n, 1);
        for (size_t b0 = i0; b0 < i1; b0 += rows) {
            const size_t b1 = std::min(i1, b0 + rows);
            size_t c = 0;
            for (size_t i = b0; i < b1; ++i)
                for (size_t j = 0; j < n; ++j, ++c) fill(i, j, c);
            logs(c);
            size_t k = 0;
            for (size_t i = b0; i < b1; ++i) {
                double r = 0;
                for (size_t j = 0; j < n; ++j, ++k) add(r, i, j, k);
                s += (w ? double(w[i]) : 1.0) * r;
            }
        }
        return s;
    }
    for (size_t i = i0; i < i1; ++i) {  // one row, kLogBuf columns at a time
        double r = 0;
        for (size_t j0 = 0; j0 < n; j0 += kLogBuf) {
            const size_t j1 = std::min(n, j0 + kLogBuf);
            for (size_t j = j0; j < j1; ++j) fill(i, j, j - j0);
            logs(j1 - j0);
            for (size_t j = j0; j < j1; ++j) add(r, i, j, j - j0);
        }
        s += (w ? double(w[i]) : 1.0) * r;
    }
    return s;
}

// bce: -(y log q + (1 - y) log1p(-q)), both logs through the vector log.
// log1p(-q) = log(s) + e / s, s = 1 - q rounded and e = -q - (s - 1) its
// exact rounding error (s - 1 is exact: Sterbenz for s >= 1/2; for q > 1/2,
// s itself is exact and e = 0), the correction vmath's log1p01 makes for u
// >= 0; the next term, e^2 / 2 s^2, is below 2^-106.
template <class T>
double bce_rows_loss(const T* Y, const T* Yhat, size_t i0, size_t i1, size_t n, const T* w) {
    const auto vlog = active_vmath().get<double>().log;
    double lq[kLogBuf], sv[kLogBuf], ls[kLogBuf], err[kLogBuf];
    return vlog_rows_loss(
        i0, i1, n, w,
        [&](size_t i, size_t j, size_t c) {
            const double q = double(clip01(Yhat[i * n + j]));
            lq[c] = q;
            sv[c] = 1.0 - q;
            err[c] = -q - (sv[c] - 1.0);
        },
        [&](size_t c) {
            vlog(lq, lq, c);
            vlog(sv, ls, c);
        },
        [&](double& r, size_t i, size_t j, size_t k) {
            const double y = double(Y[i * n + j]);
            r -= y * lq[k] + (1.0 - y) * (ls[k] + err[k] / sv[k]);
        });
}

// poisson's y log(y / q) for y != 0 where y / q is no positive normal
// number (the vector log's domain): y = 5e-324, q = 2 underflows to 0 and y =
// 1e300, q = 1e-10 overflows, and there the difference of the logs stays
// finite; a subnormal quotient keeps its own log; q = inf or NaN.
inline double poisson_ylog_scalar(double y, double q) {
    const double r = y / q;
    return (r > 0.0 && std::isfinite(r)) ? y * std::log(r) : y * (std::log(y) - std::log(q));
}

// poisson: y log(y / q) - y + q (0 log 0 = 0), the log of y / q from the
// vector log wherever y / q is a positive normal number, and the rare other
// entries with y != 0 from poisson_ylog_scalar. The vector log takes y / q
// clamped to [DBL_MIN, DBL_MAX] (NaN to DBL_MIN), so y = 0 gives y times a
// finite log, 0, and the loop has no branch on y = 0, which is common and
// at random places in count targets (BENCHMARKS.md, "Measurements behind the
// code": poisson_rows_loss).
template <class T>
double poisson_rows_loss(const T* Y, const T* Yhat, size_t i0, size_t i1, size_t n, const T* w) {
    const auto vlog = active_vmath().get<double>().log;
    double lr[kLogBuf];
    bool rare[kLogBuf];
    return vlog_rows_loss(
        i0, i1, n, w,
        [&](size_t i, size_t j, size_t c) {
            const double y = double(Y[i * n + j]);
            const double r = y / double(clip_positive(Yhat[i * n + j]));
            lr[c] = std::min(std::max(std::numeric_limits<double>::min(), r), std::numeric_limits<double>::max());
            rare[c] = lr[c] != r && y != 0.0;
        },
        [&](size_t c) { vlog(lr, lr, c); },
        [&](double& r, size_t i, size_t j, size_t k) {
            const double y = double(Y[i * n + j]), q = double(clip_positive(Yhat[i * n + j]));
            const double ylog = rare[k] ? poisson_ylog_scalar(y, q) : y * lr[k];
            r += ylog - y + q;
        });
}

// sum over rows [i0, i1) of w_i J_i, the rows added in order. A cce row
// with few classes has one or two entries with y != 0; rows up to kNarrow
// wide have theirs gathered many rows at a time for one call of the vector
// log (one call per row cost as much as the rest of the loss), each row's
// terms then summed in column order as row_loss does: the same bits, since
// the vector log computes each lane alike wherever it sits.
template <class T>
double rows_loss(Loss loss, const T* Y, const T* Yhat, size_t i0, size_t i1, size_t n, const T* w) {
    constexpr size_t kBuf = kLogBuf;
    double s = 0;
    if (loss == Loss::bce) return bce_rows_loss(Y, Yhat, i0, i1, n, w);
    if (loss == Loss::poisson) return poisson_rows_loss(Y, Yhat, i0, i1, n, w);
    if (loss != Loss::cce || n > kNarrow) {
        for (size_t i = i0; i < i1; ++i) s += (w ? double(w[i]) : 1.0) * row_loss(loss, Y + i * n, Yhat + i * n, n);
        return s;
    }
    const auto vlog = active_vmath().get<double>().log;
    double q[kBuf], yy[kBuf];
    unsigned char count[kBuf];
    const size_t rows = kBuf / n;
    for (size_t b0 = i0; b0 < i1; b0 += rows) {
        const size_t b1 = std::min(i1, b0 + rows);
        size_t c = 0;
        for (size_t i = b0; i < b1; ++i) {
            const T* y = Y + i * n;
            const T* p = Yhat + i * n;
            const size_t c0 = c;
            // Written every time, kept when y != 0: a branch on y mispredicts
            // about once a one-hot row, at a random column (BENCHMARKS.md,
            // "Measurements behind the code": rows_loss).
            for (size_t j = 0; j < n; ++j) {
                q[c] = double(clip01(p[j]));
                yy[c] = double(y[j]);
                c += y[j] != T(0);
            }
            count[i - b0] = static_cast<unsigned char>(c - c0);
        }
        if (c > 0) vlog(q, q, c);
        size_t k = 0;
        for (size_t i = b0; i < b1; ++i) {
            double r = 0;
            for (size_t e = 0; e < count[i - b0]; ++e, ++k) r -= yy[k] * q[k];
            s += (w ? double(w[i]) : 1.0) * r;
        }
    }
    return s;
}

constexpr size_t kRowBlock = 256;  // fixed reduction blocks: thread-count independent

}  // namespace

template <class T>
double loss_forward(Loss loss, const T* Y, const T* Yhat, size_t m, size_t n, const T* w) {
    const size_t nblocks = (m + kRowBlock - 1) / kRowBlock;
    if (nblocks <= 1) {
        return rows_loss(loss, Y, Yhat, 0, m, n, w);
    }
    std::vector<double> partial(nblocks, 0.0);
    const int nt = threads_for(double(m) * double(n) * (loss == Loss::sse || loss == Loss::mse ? 1.0 : 20.0), kElementwiseMinWork);
    parallel_for(nblocks, nt, [&](size_t b) {
        const size_t i0 = b * kRowBlock, i1 = std::min(m, i0 + kRowBlock);
        partial[b] = rows_loss(loss, Y, Yhat, i0, i1, n, w);
    });
    double s = 0;
    for (double v : partial) s += v;
    return s;
}

template <class T>
void loss_backward(Loss loss, const T* Y, const T* Yhat, T* dYhat, size_t m, size_t n, T scale, const T* w) {
    const int nt = threads_for(double(m) * double(n) * 2.0, kElementwiseMinWork);
    parallel_ranges(m, nt, [&](size_t i0, size_t i1) {
        // Without row weights every entry has the same formula: the rows
        // as one run, where a call per row of one or a few outputs cost more
        // than the entries (BENCHMARKS.md, "Measurements behind the code":
        // activation_forward).
        const size_t runs = w ? i1 - i0 : 1, len = w ? n : (i1 - i0) * n;
        for (size_t r = 0; r < runs; ++r) {
            const size_t i = i0 + r;
            const T s = w ? scale * w[i] : scale;
            const T* y = Y + i * n;
            const T* p = Yhat + i * n;
            T* d = dYhat + i * n;
            switch (loss) {
                case Loss::sse:
                    for (size_t j = 0; j < len; ++j) d[j] = s * (p[j] - y[j]);
                    break;
                case Loss::mse: {
                    const T c = s * T(2) / T(n);
                    for (size_t j = 0; j < len; ++j) d[j] = c * (p[j] - y[j]);
                    break;
                }
                case Loss::bce:
                    for (size_t j = 0; j < len; ++j) {
                        const T q = clip01(p[j]);
                        d[j] = s * (q - y[j]) / (q * (T(1) - q));
                    }
                    break;
                case Loss::cce:
                    for (size_t j = 0; j < len; ++j) d[j] = -s * y[j] / clip01(p[j]);
                    break;
                case Loss::poisson:
                    for (size_t j = 0; j < len; ++j) d[j] = s * (T(1) - y[j] / clip_positive(p[j]));
                    break;
            }
        }
    });
}

template <class T>
void output_backward_fused(const T* Y, const T* Yhat, T* dZ, size_t m, size_t n, T scale, const T* w,
                           bool row_sum) {
    const int nt = threads_for(double(m) * double(n), kElementwiseMinWork);
    parallel_ranges(m, nt, [&](size_t i0, size_t i1) {
        // Nothing per row (no weights, no row sums): the rows as one run, as loss_backward.
        const bool per_row = w || row_sum;
        const size_t runs = per_row ? i1 - i0 : 1, len = per_row ? n : (i1 - i0) * n;
        for (size_t r = 0; r < runs; ++r) {
            const size_t i = i0 + r;
            const T s = w ? scale * w[i] : scale;
            const T* y = Y + i * n;
            const T* p = Yhat + i * n;
            T* d = dZ + i * n;
            T sum = T(1);
            if (row_sum) {  // four chains: one add's latency a step bounded the 200 x 10 batches' pass
                T s4[4] = {T(0), T(0), T(0), T(0)};
                size_t j = 0;
                for (; j + 4 <= n; j += 4)
                    for (int q = 0; q < 4; ++q) s4[q] += y[j + q];
                for (; j < n; ++j) s4[0] += y[j];
                sum = (s4[0] + s4[1]) + (s4[2] + s4[3]);
            }
            if (sum == T(1)) {
                for (size_t j = 0; j < len; ++j) d[j] = s * (p[j] - y[j]);
            } else {
                for (size_t j = 0; j < len; ++j) d[j] = s * (p[j] * sum - y[j]);
            }
        }
    });
}

#define DNNFAST_INSTANTIATE_LOSSES(T)                                                            \
    template double loss_forward<T>(Loss, const T*, const T*, size_t, size_t, const T*);        \
    template void loss_backward<T>(Loss, const T*, const T*, T*, size_t, size_t, T, const T*);  \
    template void output_backward_fused<T>(const T*, const T*, T*, size_t, size_t, T, const T*, bool);
DNNFAST_INSTANTIATE_LOSSES(float)
DNNFAST_INSTANTIATE_LOSSES(double)

}  // namespace dnnfast
