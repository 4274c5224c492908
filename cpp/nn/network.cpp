#include "nn/network.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "checked.hpp"
#include "nn/linear.hpp"
#include "nn/optimizers.hpp"
#include "nn/vmath.hpp"
#include "threads.hpp"

namespace dnnfast {

namespace {

// Whether 1 / D (inv, and as the dtype's r) is a normal number: it overflows
// where a batch's row weights sum below 1 / max (float32 weights of 1e-40;
// float64 ones of 1e-310 overflow in double too), then inf and NaN, and is
// subnormal, its digits lost, where they sum above max / 2^p. Those batches
// divide by D instead (each w_i / D is at most 1); any other keeps 1 / D.
template <class T>
bool is_normal_reciprocal(double inv, T r) {
    return std::isfinite(inv) && std::isfinite(r) && r >= std::numeric_limits<T>::min();
}

// Copies rows `idx` of X (cols wide) into out, contiguously; with ones, into
// rows of cols + 1 whose last value is 1: [X_b | 1], whose product
// [X_b | 1]^T dZ gives the first layer's dW and db together
// (Network::bias_by_product).
template <class T>
void gather_rows(const T* X, size_t cols, const int64_t* idx, size_t n, T* out, bool ones = false) {
    // From 20000 values a thread: the copies wait on memory, and two cores
    // fetch rows faster than one (BENCHMARKS.md, "Measurements behind the
    // code": gather_rows).
    const int nt = threads_for(double(n) * double(cols), 20000.0);
    if (cols == 1 && !ones) {  // one output's targets, row weights: an indexed load, not a memcpy call per value
        parallel_for(n, nt, [&](size_t i) { out[i] = X[size_t(idx[i])]; });
        return;
    }
    // Shuffled rows of an X larger than the caches come from memory, and the
    // hardware prefetcher cannot guess the next row: fetch the one kAhead
    // rows on while copying this one. Into L2 (prefetcht1), not as
    // non-temporal (prefetchnta): on Intel the non-temporal fetches evicted
    // the lines fetched kAhead rows ahead before the copy reached them, which
    // was slower than no prefetch at all (BENCHMARKS.md, "Measurements behind
    // the code": gather_rows).
    constexpr size_t kAhead = 16;
    const size_t row_bytes = cols * sizeof(T), ld = ones ? cols + 1 : cols;
    parallel_for(n, nt, [&](size_t i) {
        if (i + kAhead < n) {
            const char* next = reinterpret_cast<const char*>(X + size_t(idx[i + kAhead]) * cols);
            for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(next + b, 0, 2);
        }
        std::memcpy(out + i * ld, X + size_t(idx[i]) * cols, row_bytes);
        if (ones) out[i * ld + cols] = T(1);
    });
}

// True when idx[0..n) is start, start+1, ...: the batch is a slice of X and
// can be used in place.
// D, the denominator of a batch's cost: the sum of its row weights, or n.
template <class T>
double row_weight_sum(const T* w, size_t n) {
    if (!w) return double(n);
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += double(w[i]);
    return s;
}

// Stored values of a sparse batch's rows (idx, or r0 + i where null).
template <class T>
double batch_values(const CsrRows<T>& X, const int64_t* idx, size_t r0, size_t n) {
    double k = 0;
    for (size_t i = 0; i < n; ++i) {
        const size_t r = idx ? size_t(idx[i]) : r0 + i;
        k += double(X.indptr[r + 1] - X.indptr[r]);
    }
    return k;
}

inline bool is_contiguous(const int64_t* idx, size_t n) {
    for (size_t i = 1; i < n; ++i)
        if (idx[i] != idx[0] + int64_t(i)) return false;
    return true;
}

}  // namespace

template <class T>
Network<T>::Network(const std::vector<size_t>& sizes, const std::vector<Act>& acts,
                    const std::vector<double>& params, Loss loss, bool fused_output)
    : loss_(loss), fused_(fused_output) {
    if (sizes.size() < 2) throw std::invalid_argument("sizes: need at least an input and an output size");
    if (acts.size() != sizes.size() - 1 || params.size() != acts.size())
        throw std::invalid_argument("activations: need one per layer");
    size_t off = 0;
    for (size_t l = 0; l + 1 < sizes.size(); ++l) {
        if (sizes[l] == 0 || sizes[l + 1] == 0) throw std::invalid_argument("sizes: must be positive");
        LayerSpec s{sizes[l], sizes[l + 1], acts[l], params[l], 0, 0, SIZE_MAX};
        s.w_off = off;
        off = checked_add(off, checked_mul(s.m_in, s.m_out, "weights"), "parameters");
        s.b_off = off;
        off = checked_add(off, s.m_out, "parameters");
        if (s.act == Act::prelu) {
            s.alpha_off = off;
            off = checked_add(off, s.m_out, "parameters");
        }
        layers_.push_back(s);
        act_params_.push_back(T(params[l]));
        // The delta buffers' width: every layer's output (a layer's input
        // above the first is the output below it); X's width never, since
        // dA[0] is not formed (a sparse X of 2^20 columns had made two
        // buffers of 2^20 values a row).
        max_width_ = std::max(max_width_, s.m_out);
    }
    checked_mul(off, sizeof(T), "parameters");  // their size in bytes must be representable too
    n_params_ = off;
    m_x_ = sizes.front();
    m_y_ = sizes.back();
}

template <class T>
const T* Network<T>::layer_alpha(const T* P, size_t l) const {
    const LayerSpec& s = layers_[l];
    return s.act == Act::prelu ? P + s.alpha_off : &act_params_[l];
}

template <class T>
size_t Network<T>::layer_alpha_stride(size_t l) const {
    return layers_[l].act == Act::prelu ? 1 : 0;
}

template <class T>
void Network<T>::ensure_workspace(Workspace& ws, size_t rows, bool training, bool dense_x) const {
    // The gathered rows of a dense X ([X_b | 1]), only where a dense X trains:
    // a sparse one's rows are read where they are.
    const bool x_rows = training && dense_x && ws.Xb.size() < checked_mul(rows, m_x_ + 1, "workspace");
    if (rows <= ws.rows && (!training || rows <= ws.train_rows) && !x_rows) return;
    // Every size below, in bytes, without wrapping (Python checks the total
    // against the free memory before calling; this guards any other caller).
    const char* what = "workspace";
    size_t per_row = checked_add(checked_mul(2, max_width_, what), checked_add(m_x_, m_y_, what), what);
    for (const LayerSpec& s : layers_) per_row = checked_add(per_row, checked_mul(2, s.m_out, what), what);
    checked_mul(checked_add(checked_mul(rows, checked_add(per_row, 1, what), what), n_params_, what), sizeof(T),
                what);
    const size_t L = layers_.size();
    if (rows > ws.rows) {
        ws.Z.resize(L);
        ws.A.resize(L);
        for (size_t l = 0; l < L; ++l) {
            const size_t sz = checked_mul(rows, layers_[l].m_out, what);
            // Identity layers keep A == Z, relu, tanh and sigmoid layers Z in
            // A (pre_activation): one buffer each.
            if (!derivative_from_output(layers_[l].act)) ws.Z[l].assign(sz, T(0));
            if (layers_[l].act != Act::identity) ws.A[l].assign(sz, T(0));
        }
        ws.rows = rows;
    }
    if (training && rows > ws.train_rows) {
        const size_t dsz = checked_mul(rows, max_width_, what);
        ws.D0.assign(dsz, T(0));
        ws.D1.assign(dsz, T(0));
        ws.Yb.assign(checked_mul(rows, m_y_, what), T(0));
        ws.wb.assign(rows, T(0));
        ws.wf.assign(rows, T(0));
        ws.G.assign(n_params_, T(0));
        ws.step_u.assign(m_x_, T(0));
        ws.step_v.assign(layers_[0].m_out, T(0));
        if (dense_x) ws.W0.reserve(m_x_, layers_[0].m_out);  // (a sparse X's steps never pack W)
        ws.train_rows = rows;
    }
    if (x_rows) ws.Xb.assign(rows * (m_x_ + 1), T(0));
}

// The output layer's A (its Z for identity) in the workspace.
template <class T>
const T* Network<T>::output(const Workspace& ws) const {
    const size_t L = layers_.size();
    return layers_[L - 1].act == Act::identity ? ws.Z[L - 1].data() : ws.A[L - 1].data();
}

// Where layer l's Z (the pre-activation) is kept. A layer whose sigma' needs
// only A (relu, tanh, sigmoid: derivative_from_output) keeps none of its
// own, so the forward GEMM's epilogue writes f(z + b) once over its own
// output instead of storing z + b and f(z + b) both (the second store, and a
// tanh layer's bias pass and its Z, were each another pass over the block:
// BENCHMARKS.md, "Measurements behind the code": Network::pre_activation).
template <class T>
T* Network<T>::pre_activation(Workspace& ws, size_t l) const {
    return derivative_from_output(layers_[l].act) ? ws.A[l].data() : ws.Z[l].data();
}

// Forward through the layers from `first_layer` on into the workspace
// (Z where pre_activation keeps it, ws.A[l]); the layers before it are
// already there.
template <class T>
void Network<T>::forward_batch(Workspace& ws, const T* P, const T* X, size_t n, size_t first_layer,
                               size_t x_ld) const {
    const T* a_in = X;
    if (first_layer > 0) {
        const size_t p = first_layer - 1;
        a_in = layers_[p].act == Act::identity ? ws.Z[p].data() : ws.A[p].data();
    }
    for (size_t l = first_layer; l < layers_.size(); ++l) {
        const LayerSpec& s = layers_[l];
        T* Z = pre_activation(ws, l);
        T* A = s.act == Act::identity ? Z : ws.A[l].data();
        if (l == 0 && ws.w0_packed)  // (plain SGD: X never has the ones column then)
            dense_forward<T>(Z, A, a_in, ws.W0, P + s.b_off, n, s.act, layer_alpha(P, l), layer_alpha_stride(l));
        else
            dense_forward<T>(Z, A, a_in, P + s.w_off, P + s.b_off, n, s.m_in, s.m_out, s.act, layer_alpha(P, l),
                             layer_alpha_stride(l), l == 0 ? x_ld : 0);
        a_in = A;
    }
}

// Backward for the batch whose forward pass is in the workspace, with D =
// denom (row_weight_sum). Writes the flat gradient into G and returns the data
// cost sum_i w_i J_i / D.
//
// With P_sgd (== P) and sgd_lr > 0 it instead applies plain SGD as it goes
// (P -= sgd_lr * grad),
// folding the update into the dW GEMM (W := W - lr A^T dZ, beta = 1): the
// weight gradient is never written out and read back, which at batch size 1
// is most of the memory traffic. G then only holds the small vectors (db,
// prelu's dalpha) on their way into P. Each layer's dA is formed from its W
// before that W is updated. With first_dz, the first layer's W step is
// left to the caller: its dZ (n x m_out, scaled as the step would take it)
// is copied to first_dz, and the step would be W -= lr X^T dZ; its b steps
// here.
template <class T>
double Network<T>::backward_batch(const T* P, const T* X, const T* Y, const T* w, size_t n, double denom, T* G,
                                  T* P_sgd, T sgd_lr, T* first_dz, size_t x_ld, const Batch* sparse, T sgd_decay,
                                  double* sgd_squares) {
    const size_t L = layers_.size();
    const bool update = P_sgd && sgd_lr > T(0);
    const LayerSpec& out = layers_[L - 1];
    const T* Yhat = output(ws_);
    // A batch whose weights are all zero contributes nothing (and no 0/0).
    const double inv = denom > 0 ? 1.0 / denom : 0.0;
    T scale = T(inv);
    const bool divide = denom > 0 && !is_normal_reciprocal(inv, scale);
    const double loss = loss_forward<T>(loss_, Y, Yhat, n, m_y_, w);
    const double cost = divide ? loss / denom : loss * inv;
    if (divide && w) {  // (unweighted, D is the row count) each row's w_i / D, in double, rounded once
        T* f = ws_.wf.data();
        for (size_t i = 0; i < n; ++i) f[i] = T(double(w[i]) / denom);
        w = f;
        scale = T(1);
    }

    // dZ[L]: fused when the output/loss pair allows it, else dA[L] then sigma'.
    // dZ moves between D0 and D1 (each max_width_ wide), or into a relu
    // layer's A (dz_over_a, below); spare is always the D buffer dZ is not in.
    T* const d0 = ws_.D0.data();
    T* const d1 = ws_.D1.data();
    T* dZ = d0;
    T* spare = d1;
    const auto move_to = [&](T* next) {  // dZ := next; spare := a D buffer other than next
        dZ = next;
        spare = next == d0 ? d1 : d0;
    };
    const bool fusable = (loss_ == Loss::cce && out.act == Act::softmax) ||
                         (loss_ == Loss::bce && out.act == Act::sigmoid) ||
                         (loss_ == Loss::poisson && out.act == Act::exp);
    if (fused_ && fusable) {
        output_backward_fused<T>(Y, Yhat, dZ, n, m_y_, scale, w, loss_ == Loss::cce);
    } else {
        loss_backward<T>(loss_, Y, Yhat, dZ, n, m_y_, scale, w);
        if (out.act == Act::prelu)
            prelu_alpha_backward<T>(ws_.Z[L - 1].data(), dZ, G + out.alpha_off, n, out.m_out);
        activation_backward<T>(out.act, pre_activation(ws_, L - 1), Yhat, dZ, dZ, n, out.m_out, layer_alpha(P, L - 1),
                               layer_alpha_stride(L - 1));
    }

    // X = [X_b | 1]: the first layer's [dW; db] is one product (below).
    const bool first_by_product = !update && x_ld == layers_[0].m_in + 1;
    for (size_t l = L; l-- > 0;) {
        const LayerSpec& s = layers_[l];
        const T* a_prev = X;
        if (l > 0) a_prev = layers_[l - 1].act == Act::identity ? ws_.Z[l - 1].data() : ws_.A[l - 1].data();
        // One output below a relu layer (a binary classifier, a
        // one-target regressor): dZ[l-1] = (dZ w^T) (.) relu'(A[l-1]) is a
        // rank-1 product that reads each mask value and then writes its
        // element, so it can overwrite A[l-1] once dW has read it (below):
        // the 200 x 100 float64 dZ of breast_cancer's batch then goes through
        // L2 once, not read from A and written to a third buffer
        // (BENCHMARKS.md, "Measurements behind the code":
        // Network::backward_batch). Not while updating W in place, where dA
        // must come first.
        const bool dz_over_a = l > 0 && !update && s.m_out == 1 && layers_[l - 1].act == Act::relu;
        // One row's step on a layer above the first: dA through W and W's
        // step in one sweep over W, so W is read once instead of twice
        // (gemm_dot_rank1: dA's bits, the step one FMA an element;
        // BENCHMARKS.md, "Measurements behind the code":
        // Network::backward_batch).
        const bool dz_then_step = update && !sgd_squares && n == 1 && l > 0 && P_sgd == P && s.m_out > 1 &&
                                  layers_[l - 1].act != Act::softmax && layers_[l - 1].act != Act::prelu;
        // dZ[l-1] = (dZ W^T) (.) sigma'(Z[l-1]), fused in the GEMM's epilogue;
        // prelu keeps dA to form its alpha gradient first. Above a first
        // layer whose [dW; db] is one product with [X_b | 1] (below), dZ[0]
        // goes straight into that product, a strip of columns at a time
        // (dense_backward_first_layer: the same bits, dZ[0] never stored
        // whole).
        const bool first_by_chain = l == 1 && first_by_product && !dz_over_a && layers_[0].act != Act::prelu &&
                                    layers_[0].act != Act::softmax;
        if (l > 0 && !dz_over_a) {
            const LayerSpec& p = layers_[l - 1];
            const T* zp = pre_activation(ws_, l - 1);
            if (first_by_chain) {
                dense_backward_first_layer<T>(G + p.w_off, X, x_ld, dZ, P + s.w_off, zp, a_prev, n, s.m_in, s.m_out,
                                              p.act, layer_alpha(P, l - 1), layer_alpha_stride(l - 1), spare);
            } else if (dz_then_step) {
                dense_backward_input_row_then_step<T>(spare, dZ, P_sgd + s.w_off, zp, a_prev, s.m_in, s.m_out, p.act,
                                                      layer_alpha(P, l - 1), layer_alpha_stride(l - 1), -sgd_lr);
            } else if (p.act == Act::prelu) {
                gemm<T>(Trans::N, Trans::T, n, s.m_in, s.m_out, T(1), dZ, s.m_out, P + s.w_off, s.m_out, T(0),
                        spare, s.m_in);
                prelu_alpha_backward<T>(zp, spare, G + p.alpha_off, n, p.m_out);
                activation_backward<T>(p.act, zp, a_prev, spare, spare, n, p.m_out, layer_alpha(P, l - 1), 1);
            } else {
                dense_backward_input<T>(spare, dZ, P + s.w_off, zp, a_prev, n, s.m_in, s.m_out, p.act,
                                        layer_alpha(P, l - 1), layer_alpha_stride(l - 1));
            }
        }
        // Plain SGD's L2 term, W += d W (d = -lr c), after W gave dA (above)
        // and before its gradient's step (below): W -= lr (G + c W) as two
        // steps, each in place, two sweeps over W instead of six (G, G +=
        // c W, W -= lr G); W's sum of squares, before, for the penalty.
        if (update && sgd_squares) sgd_squares[l] = active_vmath().template get<T>().l2_decay(
                                                      P_sgd + s.w_off, s.m_in * s.m_out, sgd_decay);
        // dW = A[l-1]^T dZ (or W -= lr A[l-1]^T dZ), db = column sums of dZ.
        if (l == 0 && first_by_product) {
            // X = [X_b | 1] (bias_by_product): [dW; db] = [X_b | 1]^T dZ in
            // one product, db's FMA chains 1 * dZ added down the rows from 0
            // in one K slice, the column sums' own bits. (dW and db are
            // adjacent in G: b_off = w_off + m_in * m_out.)
            gemm<T>(Trans::T, Trans::N, s.m_in + 1, s.m_out, n, T(1), X, x_ld, dZ, s.m_out, T(0), G + s.w_off,
                    s.m_out);
            continue;  // (the first layer: no dZ below it)
        }
        if (l == 0 && sparse) {
            if (update)
                sparse_first_gradient(*sparse, n, dZ, -sgd_lr, P_sgd + s.w_off, false);
            else
                sparse_first_gradient(*sparse, n, dZ, T(1), G + s.w_off, true);
        } else if (update && l == 0 && first_dz) {
            std::memcpy(first_dz, dZ, n * s.m_out * sizeof(T));
        } else if (dz_then_step) {
            // (W stepped above, with dA)
        } else if (update && l == 0 && ws_.w0_packed)
            gemm_into_packed<T>(Trans::T, Trans::N, n, -sgd_lr, a_prev, s.m_in, dZ, s.m_out, T(1), ws_.W0);
        else if (update)
            gemm<T>(Trans::T, Trans::N, s.m_in, s.m_out, n, -sgd_lr, a_prev, s.m_in, dZ, s.m_out, T(1),
                    P_sgd + s.w_off, s.m_out);
        else
            gemm<T>(Trans::T, Trans::N, s.m_in, s.m_out, n, T(1), a_prev, s.m_in, dZ, s.m_out, T(0), G + s.w_off,
                    s.m_out);
        column_sums<T>(dZ, G + s.b_off, n, s.m_out);
        if (update) {
            for (size_t j = 0; j < s.m_out; ++j) P_sgd[s.b_off + j] -= sgd_lr * G[s.b_off + j];
            if (s.act == Act::prelu)
                for (size_t j = 0; j < s.m_out; ++j) P_sgd[s.alpha_off + j] -= sgd_lr * G[s.alpha_off + j];
        }
        if (dz_over_a) {
            T* a = ws_.A[l - 1].data();  // relu keeps its Z there too (pre_activation)
            dense_backward_input<T>(a, dZ, P + s.w_off, a, a, n, s.m_in, s.m_out, Act::relu, nullptr, 0);
            move_to(a);  // spare stays a D buffer: a is only m_in wide
            continue;
        }
        if (first_by_chain) break;  // (the first layer's [dW; db] done above)
        move_to(spare);
    }
    return cost;
}

// Adds the L2 terms to G's weights and returns the penalty
// 0.5 (l2 / D + weight_decay) sum(W^2) (see OptimizerConfig).
template <class T>
double Network<T>::l2_penalty_and_grad(const T* P, const OptimizerConfig<T>& opt, double denom, T* G) {
    const double coef = l2_coefficient(opt, denom);
    if (coef == 0.0) return 0.0;
    double sq = 0;
    const T c = T(coef);
    const auto l2_grad = active_vmath().template get<T>().l2_grad;
    for (const LayerSpec& s : layers_) sq += l2_grad(P + s.w_off, G + s.w_off, s.m_in * s.m_out, c);
    return l2_penalty(opt, denom, sq);
}

// c of the L2 term c W of the weights' gradient: l2 / D + weight_decay.
template <class T>
double Network<T>::l2_coefficient(const OptimizerConfig<T>& opt, double denom) {
    return (opt.l2 != T(0) && denom > 0 ? double(opt.l2) / denom : 0.0) + double(opt.weight_decay);
}

// The penalty 0.5 c sum(W^2) from the weights' sum of squares.
template <class T>
double Network<T>::l2_penalty(const OptimizerConfig<T>& opt, double denom, double squares) {
    // The scikit-learn form's rounding as before weight_decay existed.
    const double l2_part = opt.l2 != T(0) && denom > 0 ? 0.5 * double(opt.l2) * squares / denom : 0.0;
    return l2_part + 0.5 * double(opt.weight_decay) * squares;
}

template <class T>
void Network<T>::forward(const T* P, const T* X, size_t n, T* const* Zs, T* const* As) {
    const T* a_in = X;
    for (size_t l = 0; l < layers_.size(); ++l) {
        const LayerSpec& s = layers_[l];
        dense_forward<T>(Zs[l], As[l], a_in, P + s.w_off, P + s.b_off, n, s.m_in, s.m_out, s.act,
                         layer_alpha(P, l), layer_alpha_stride(l));
        a_in = As[l];
    }
}

template <class T>
void Network<T>::predict(const T* P, const T* X, size_t n, T* Yhat) {
    chunked_predict(P, X, nullptr, n, Yhat);
}

template <class T>
void Network<T>::predict(const T* P, const CsrRows<T>& X, T* Yhat) {
    chunked_predict(P, nullptr, &X, X.n_rows, Yhat);
}

template <class T>
void Network<T>::chunked_predict(const T* P, const T* X, const CsrRows<T>* Xs, size_t n, T* Yhat) {
    // The shared workspace when it is free, else one of this call's own.
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    Workspace own;
    Workspace& ws = lock.owns_lock() ? ws_ : own;
    ensure_workspace(ws, std::min(n, kChunkRows), false);
    for (size_t i0 = 0, m; i0 < n; i0 += m) {
        m = chunk_at(i0, n);
        forward_chunk(ws, P, X, Xs, i0, m);
        std::memcpy(Yhat + i0 * m_y_, output(ws), m * m_y_ * sizeof(T));
    }
}

template <class T>
void Network<T>::sparse_first_layer(Workspace& ws, const T* P, const Batch& b, size_t n) const {
    const LayerSpec& f = layers_[0];
    const size_t m = f.m_out;
    T* z = pre_activation(ws, 0);
    const CsrRows<T>& X = *b.csr;
    const auto times = active_vmath().template get<T>().csr_times;
    // Rows split over the threads; each row's sums are the same however split.
    const int nt = threads_for(batch_values(X, b.idx, b.r0, n) * double(m), 20000.0);
    parallel_ranges(n, nt, [&](size_t i0, size_t i1) {
        times(X.indptr, X.indices, X.data, b.idx ? b.idx + i0 : nullptr, b.r0 + i0, i1 - i0, P + f.w_off, m,
              z + i0 * m);
    });
    first_layer_output(ws, P, n);
}

// The first layer's z + b and f(z + b) for n rows whose product z (X W) is
// already in its pre-activation buffer: b added after the product, as the
// GEMM's epilogue adds it (a sparse X's rows, a window's corrected rows).
template <class T>
void Network<T>::first_layer_output(Workspace& ws, const T* P, size_t n) const {
    const LayerSpec& f = layers_[0];
    const size_t m = f.m_out;
    T* z = pre_activation(ws, 0);
    const T* bias = P + f.b_off;
    for (size_t i = 0; i < n; ++i)
        for (size_t c = 0; c < m; ++c) z[i * m + c] += bias[c];
    if (f.act != Act::identity)
        activation_forward<T>(f.act, z, ws.A[0].data(), n, m, layer_alpha(P, 0), layer_alpha_stride(0));
}

template <class T>
void Network<T>::sparse_first_gradient(const Batch& b, size_t n, const T* dZ, T s, T* GW, bool from_zero) const {
    const LayerSpec& f = layers_[0];
    const size_t m = f.m_out;
    const CsrRows<T>& X = *b.csr;
    if (from_zero)  // the gradient: X_b^T dZ from 0 (rows of W no value touches stay 0)
        parallel_ranges(f.m_in, threads_for(double(f.m_in) * double(m), 150000.0), [&](size_t j0, size_t j1) {
            std::memset(GW + j0 * m, 0, (j1 - j0) * m * sizeof(T));
        });
    // Columns split over the threads, in whole 64-byte lines: each element
    // takes its products in the rows' order on any split.
    constexpr size_t kUnit = 64 / sizeof(T);
    const size_t units = (m + kUnit - 1) / kUnit;
    const int nt = std::min<int>(threads_for(batch_values(X, b.idx, b.r0, n) * double(m), 20000.0), int(units));
    const auto scatter = active_vmath().template get<T>().csr_scatter;
    parallel_ranges(units, nt, [&](size_t u0, size_t u1) {
        scatter(X.indptr, X.indices, X.data, b.idx, b.r0, n, dZ, m, u0 * kUnit, std::min(m, u1 * kUnit), s, GW);
    });
}

template <class T>
double Network<T>::cost(const T* P, const T* X, const T* Y, const T* w, size_t n) {
    return chunked_cost(P, X, nullptr, Y, w, n);
}

template <class T>
double Network<T>::cost(const T* P, const CsrRows<T>& X, const T* Y, const T* w) {
    return chunked_cost(P, nullptr, &X, Y, w, X.n_rows);
}

template <class T>
double Network<T>::chunked_cost(const T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w, size_t n) {
    std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
    Workspace own;
    Workspace& ws = lock.owns_lock() ? ws_ : own;
    ensure_workspace(ws, std::min(n, kChunkRows), false);
    double J = 0;
    for (size_t i0 = 0, m; i0 < n; i0 += m) {
        m = chunk_at(i0, n);
        forward_chunk(ws, P, X, Xs, i0, m);
        J += loss_forward<T>(loss_, Y + i0 * m_y_, output(ws), m, m_y_, w ? w + i0 : nullptr);
    }
    return J / row_weight_sum(w, n);
}

// The forward pass of rows i0 .. i0 + m of X (dense) or Xs (sparse) into ws.
template <class T>
void Network<T>::forward_chunk(Workspace& ws, const T* P, const T* X, const CsrRows<T>* Xs, size_t i0,
                               size_t m) const {
    if (!Xs) {
        forward_batch(ws, P, X + i0 * m_x_, m);
        return;
    }
    Batch b;
    b.csr = Xs;
    b.r0 = i0;
    sparse_first_layer(ws, P, b, m);
    forward_batch(ws, P, nullptr, m, 1);
}

template <class T>
double Network<T>::loss_and_gradient(const T* P, const T* X, const T* Y, const T* w, const int64_t* rows,
                                     size_t n, T l2, T* G, double* penalty) {
    return loss_and_gradient_of(P, X, nullptr, Y, w, rows, n, l2, G, penalty);
}

template <class T>
double Network<T>::loss_and_gradient(const T* P, const CsrRows<T>& X, const T* Y, const T* w, const int64_t* rows,
                                     size_t n, T l2, T* G, double* penalty) {
    return loss_and_gradient_of(P, nullptr, &X, Y, w, rows, n, l2, G, penalty);
}

template <class T>
double Network<T>::loss_and_gradient_of(const T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w,
                                        const int64_t* rows, size_t n, T l2, T* G, double* penalty) {
    std::lock_guard<std::mutex> lock(mutex_);
    double denom = 0;
    const double c = batch_gradient(P, X, Xs, Y, w, rows, n, G, &denom, true);
    OptimizerConfig<T> pen_only;
    pen_only.l2 = l2;
    const double pen = l2_penalty_and_grad(P, pen_only, denom, G);
    if (penalty) *penalty = pen;
    return c;
}

// The forward and backward passes of rows `rows` (0..n-1 where null) of X
// (dense) or Xs (sparse), n >= 1: a dense X's rows gathered into the
// workspace unless consecutive, a sparse X's read where they are. Writes
// the gradient into G, the rows' weight sum D into *weight_sum, and returns
// the data cost, both divided by D (divide: loss_and_gradient) or not
// (gradient_sum, whose sum over processes is divided later).
template <class T>
double Network<T>::batch_gradient(const T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w,
                                  const int64_t* rows, size_t n, T* G, double* weight_sum, bool divide) {
    ensure_workspace(ws_, n, true, !Xs);
    const bool in_place = !rows || is_contiguous(rows, n);
    const size_t r0 = rows ? size_t(rows[0]) : 0;
    const T *Yb = Y + r0 * m_y_, *wb = w ? w + r0 : nullptr;
    if (!in_place) {
        gather_rows(Y, m_y_, rows, n, ws_.Yb.data());
        if (w) gather_rows(w, 1, rows, n, ws_.wb.data());
        Yb = ws_.Yb.data();
        wb = w ? ws_.wb.data() : nullptr;
    }
    Batch b;
    if (Xs) {
        b.csr = Xs;
        b.idx = in_place ? nullptr : rows;
        b.r0 = in_place ? r0 : 0;
        sparse_first_layer(ws_, P, b, n);
        forward_batch(ws_, P, nullptr, n, 1);
    } else {
        b.x = X + r0 * m_x_;
        if (!in_place) {
            gather_rows(X, m_x_, rows, n, ws_.Xb.data());
            b.x = ws_.Xb.data();
        }
        forward_batch(ws_, P, b.x, n);
    }
    *weight_sum = row_weight_sum(wb, n);
    // D = 1 (gradient_sum): the output gradient is not scaled, so G is the plain sum over rows.
    return backward_batch(P, b.x, Yb, wb, n, divide ? *weight_sum : 1.0, G, nullptr, T(0), nullptr, 0,
                          Xs ? &b : nullptr);
}

template <class T>
EpochResult Network<T>::train_epoch(T* P, const T* X, const T* Y, const T* w, size_t n_rows,
                                    const int64_t* order, size_t n_order, size_t batch,
                                    const OptimizerConfig<T>& opt, T* s1, T* s2, int64_t* t, double cost_sum,
                                    double penalty_sum) {
    std::lock_guard<std::mutex> lock(mutex_);
    return train_steps(P, X, nullptr, Y, w, n_rows, order, n_order, batch, opt, s1, s2, t, cost_sum, penalty_sum);
}

template <class T>
EpochResult Network<T>::train_epoch(T* P, const CsrRows<T>& X, const T* Y, const T* w, const int64_t* order,
                                    size_t n_order, size_t batch, const OptimizerConfig<T>& opt, T* s1, T* s2,
                                    int64_t* t, double cost_sum, double penalty_sum) {
    std::lock_guard<std::mutex> lock(mutex_);
    return train_steps(P, nullptr, &X, Y, w, X.n_rows, order, n_order, batch, opt, s1, s2, t, cost_sum,
                       penalty_sum);
}

// train_epoch's steps, on a dense X or a sparse Xs (the one not null).
template <class T>
EpochResult Network<T>::train_steps(T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w, size_t n_rows,
                                    const int64_t* order, size_t n_order, size_t batch,
                                    const OptimizerConfig<T>& opt, T* s1, T* s2, int64_t* t, double cost_sum,
                                    double penalty_sum) {
    if (batch == 0) throw std::invalid_argument("batch_size must be positive");
    for (size_t i = 0; i < n_order; ++i)
        if (order[i] < 0 || size_t(order[i]) >= n_rows) throw std::out_of_range("order: row index out of range");
    if ((opt.kind == Optim::momentum || opt.kind == Optim::nesterov || opt.kind == Optim::adam) && !s1)
        throw std::invalid_argument("optimizer state buffer missing");
    if (opt.kind == Optim::adam && (!s2 || !t)) throw std::invalid_argument("adam state buffers missing");
    ensure_workspace(ws_, std::min(batch, n_order), true, !Xs);
    // Plain SGD is applied inside the backward pass, its L2 term (with a
    // penalty) as a step of its own on each W there (backward_batch's
    // sgd_squares); without one, with one row per batch, the first layer's
    // step is fused with the next row's forward pass (one sweep over its W
    // instead of two). (The L2 term made apart, through G, cost a step of
    // one row a quarter more: BENCHMARKS.md, "Measurements behind the code":
    // Network::train_steps.)
    const bool sgd_in_place = opt.kind == Optim::sgd && opt.learning_rate > T(0);
    const bool has_l2 = opt.l2 != T(0) || opt.weight_decay != T(0);
    std::vector<double> squares(sgd_in_place && has_l2 ? layers_.size() : 0);
    const bool fuse_first = sgd_in_place && !has_l2 && batch == 1 && !Xs;
    const LayerSpec& first = layers_[0];
    const T lr = opt.learning_rate;
    auto make_pending_step = [&]() {
        if (!ws_.step_pending) return;
        gemm<T>(Trans::T, Trans::N, first.m_in, first.m_out, 1, -lr, ws_.step_u.data(), first.m_in,
                ws_.step_v.data(), first.m_out, T(1), P + first.w_off, first.m_out);
        ws_.step_pending = false;
    };
    ws_.step_pending = false;
    EpochResult res;
    res.cost_sum = cost_sum;
    res.penalty_sum = penalty_sum;
    // Plain SGD in small batches on a large first W (takes_window): in
    // windows of whole batches (train_window), which sweep that W twice a
    // window instead of twice a batch (once a row at one row a batch).
    const bool windowed = sgd_in_place && !has_l2 && !Xs && takes_window(batch, first.m_in * first.m_out * sizeof(T));
    const size_t win_rows = window_batches(batch) * batch;
    try {
    for (size_t b0 = 0; windowed && b0 < n_order; b0 += win_rows)
        train_window(P, X, Y, w, order + b0, std::min(win_rows, n_order - b0), batch, lr, res);
    for (size_t b0 = 0; !windowed && b0 < n_order; b0 += batch) {
        const size_t n = std::min(batch, n_order - b0);
        const int64_t* idx = order + b0;
        const int64_t teams0 = teams_asked_here();
        const T *Xb = nullptr, *Yb, *wb = nullptr;
        size_t x_ld = m_x_;
        Batch sb;  // a sparse X's rows, read where they are
        const bool in_place = is_contiguous(idx, n);
        if (Xs) {
            sb.csr = Xs;
            sb.idx = in_place ? nullptr : idx;
            sb.r0 = in_place ? size_t(idx[0]) : 0;
        }
        if (in_place) {  // a slice of X: no copy
            if (!Xs) Xb = X + size_t(idx[0]) * m_x_;
            Yb = Y + size_t(idx[0]) * m_y_;
            if (w) wb = w + idx[0];
        } else {
            if (!Xs) {
                const bool ones = !sgd_in_place && bias_by_product(n);
                if (ones) x_ld = m_x_ + 1;
                gather_rows(X, m_x_, idx, n, ws_.Xb.data(), ones);
                Xb = ws_.Xb.data();
            }
            gather_rows(Y, m_y_, idx, n, ws_.Yb.data());
            if (w) { gather_rows(w, 1, idx, n, ws_.wb.data()); wb = ws_.wb.data(); }
            Yb = ws_.Yb.data();
        }
        const Batch* sparse = Xs ? &sb : nullptr;
        if (Xs) {
            sparse_first_layer(ws_, P, sb, n);
            forward_batch(ws_, P, nullptr, n, 1);
        } else if (ws_.step_pending && n == 1) {
            T* Z = pre_activation(ws_, 0);
            dense_forward_row_after_step<T>(Z, first.act == Act::identity ? Z : ws_.A[0].data(), Xb, P + first.w_off,
                                            P + first.b_off, first.m_in, first.m_out, first.act,
                                            layer_alpha(P, 0), layer_alpha_stride(0), -lr, ws_.step_u.data(),
                                            ws_.step_v.data());
            ws_.step_pending = false;
            forward_batch(ws_, P, Xb, n, 1);
        } else {
            make_pending_step();
            // (kept packed, the first W could not take its L2 step and sum of squares in place)
            keep_first_packed(P, sgd_in_place && !has_l2 && !fuse_first &&
                                     packed_b_matches_gemm<T>(n, first.m_in, first.m_out));
            forward_batch(ws_, P, Xb, n, 0, x_ld);
        }
        const double denom = row_weight_sum(wb, n);
        double c, pen = 0;
        if (sgd_in_place) {
            const bool defer = fuse_first && n == 1;  // the step made with the next row's forward pass
            // The L2 step W += d W, d = -lr c: that of W -= lr (G + c W), c rounded as l2_penalty_and_grad's.
            const double coef = has_l2 ? l2_coefficient(opt, denom) : 0.0;
            const T decay = T(-double(lr) * double(T(coef)));
            c = backward_batch(P, Xb, Yb, wb, n, denom, ws_.G.data(), P, lr, defer ? ws_.step_v.data() : nullptr, 0,
                               sparse, decay, coef != 0.0 ? squares.data() : nullptr);
            if (coef != 0.0) {  // the penalty of W before the step, its layers summed in order (as l2_penalty_and_grad)
                double sq = 0;
                for (const double v : squares) sq += v;
                pen = l2_penalty(opt, denom, sq);
            }
            if (defer) {
                std::memcpy(ws_.step_u.data(), Xb, first.m_in * sizeof(T));
                ws_.step_pending = true;
            }
        } else {
            c = backward_batch(P, Xb, Yb, wb, n, denom, ws_.G.data(), nullptr, T(0), nullptr, x_ld, sparse);
            pen = l2_penalty_and_grad(P, opt, denom, ws_.G.data());
            optimizer_step<T>(P, ws_.G.data(), n_params_, opt, s1, s2, t, teams_asked_here() != teams0);
        }
        res.cost_sum += c * double(n);
        res.penalty_sum += pen * double(n);
        res.updates += 1;
    }
    } catch (...) {
        make_pending_step();  // P is left as after the last completed step
        keep_first_packed(P, false);
        throw;
    }
    make_pending_step();  // the last row's
    keep_first_packed(P, false);
    return res;
}

// One window of plain-SGD steps (train_epoch): rows idx[0..k), in batches
// of `batch` rows from its first (the last one possibly shorter), the steps
// of one batch at a time up to round-off. Batch beta's first-layer
// pre-activations are X_beta W_beta + b, W_beta = W - lr sum_i x_i dz_i^T
// over the rows i of the window's earlier batches (dz_i: row i of the dZ
// that batch's step takes, its row weight and 1 / D in it) the first W
// after their steps: X_beta W (one product for the window) - lr
// Gram[beta, earlier] dZ[earlier] (the window's Gram matrix X X^T), plus b
// as stepped so far. The layers above step batch by batch in place as
// before (dA from each W before its step), and the first W takes the
// window's steps as one product at its end: two sweeps of it a window
// instead of two a batch. If a step throws, the steps of the batches
// completed are applied before it goes on.
template <class T>
void Network<T>::train_window(T* P, const T* X, const T* Y, const T* w, const int64_t* idx, size_t k, size_t batch,
                              T lr, EpochResult& res) {
    const LayerSpec& f = layers_[0];
    const size_t mx = m_x_, m1 = f.m_out, kw = kStochasticWindow;
    const auto at_least = [](std::vector<T>& v, size_t n) {
        if (v.size() < n) v.assign(n, T(0));
    };
    at_least(ws_.win_x, kw * mx);
    at_least(ws_.win_z, kw * m1);
    at_least(ws_.win_gram, kw * kw);
    at_least(ws_.win_dz, kw * m1);
    const T* xw = X + size_t(idx[0]) * mx;
    if (!is_contiguous(idx, k)) {
        gather_rows(X, mx, idx, k, ws_.win_x.data());
        xw = ws_.win_x.data();
    }
    T* const W = P + f.w_off;
    T* const zw = ws_.win_z.data();
    T* const gram = ws_.win_gram.data();
    T* const dzw = ws_.win_dz.data();
    gemm<T>(Trans::N, Trans::N, k, m1, mx, T(1), xw, mx, W, m1, T(0), zw, m1);
    if (k > batch) gemm<T>(Trans::N, Trans::T, k, k, mx, T(1), xw, mx, xw, mx, T(0), gram, k);
    size_t done = 0;  // rows whose batch has stepped
    const auto step_first = [&] {
        if (done) gemm<T>(Trans::T, Trans::N, mx, m1, done, -lr, xw, mx, dzw, m1, T(1), W, m1);
    };
    try {
        for (size_t j = 0; j < k; j += batch) {
            const size_t n = std::min(batch, k - j);
            const int64_t* ib = idx + j;
            const T* x = xw + j * mx;
            const T *Yb, *wb = nullptr;
            if (is_contiguous(ib, n)) {
                Yb = Y + size_t(ib[0]) * m_y_;
                if (w) wb = w + ib[0];
            } else {
                gather_rows(Y, m_y_, ib, n, ws_.Yb.data());
                Yb = ws_.Yb.data();
                if (w) { gather_rows(w, 1, ib, n, ws_.wb.data()); wb = ws_.wb.data(); }
            }
            T* z = pre_activation(ws_, 0);
            std::memcpy(z, zw + j * m1, n * m1 * sizeof(T));
            if (j) gemm<T>(Trans::N, Trans::N, n, m1, j, -lr, gram + j * k, k, dzw, m1, T(1), z, m1);
            first_layer_output(ws_, P, n);
            forward_batch(ws_, P, x, n, 1);
            const double c = backward_batch(P, x, Yb, wb, n, row_weight_sum(wb, n), ws_.G.data(), P, lr,
                                            dzw + j * m1);
            done = j + n;
            res.cost_sum += c * double(n);
            res.updates += 1;
        }
    } catch (...) {
        step_first();
        throw;
    }
    step_first();
}

// Whether a gathered batch of n rows goes in as [X_b | 1], so that the
// first layer's db comes out of its dW product (backward_batch) instead of
// a pass of column sums over dZ. Only where it keeps every bit: K = n in one
// slice of the product (then each db chain is the column sums' sequential
// sum), and where the extra row of A fits an edge micro-tile that is
// computed anyway (m_in not a multiple of MR; otherwise it costs a new
// one-row tile). (BENCHMARKS.md, "Measurements behind the code":
// Network::bias_by_product.)
template <class T>
bool Network<T>::bias_by_product(size_t n) const {
    return n > 1 && gemm_one_chain_with_spare_row<T>(layers_[0].m_in, layers_[0].m_out, n);
}

// Moves the first layer's W into ws_.W0 (keep) or back into P. The products
// on the packed copy give the bits of those on P (packed_b_matches_gemm), so
// where W lives changes speed only.
template <class T>
void Network<T>::keep_first_packed(T* P, bool keep) {
    if (keep == ws_.w0_packed) return;
    const LayerSpec& s = layers_[0];
    if (keep)
        ws_.W0.pack(P + s.w_off, s.m_out, s.m_in, s.m_out);
    else
        ws_.W0.unpack(P + s.w_off, s.m_out);
    ws_.w0_packed = keep;
}

template <class T>
double Network<T>::gradient_sum(const T* P, const T* X, const T* Y, const T* w, const int64_t* rows, size_t n,
                                T* G, double* weight_sum) {
    return gradient_sum_of(P, X, nullptr, Y, w, rows, n, G, weight_sum);
}

template <class T>
double Network<T>::gradient_sum(const T* P, const CsrRows<T>& X, const T* Y, const T* w, const int64_t* rows,
                                size_t n, T* G, double* weight_sum) {
    return gradient_sum_of(P, nullptr, &X, Y, w, rows, n, G, weight_sum);
}

template <class T>
double Network<T>::gradient_sum_of(const T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w,
                                   const int64_t* rows, size_t n, T* G, double* weight_sum) {
    std::lock_guard<std::mutex> lock(mutex_);
    *weight_sum = 0;
    if (n == 0) {  // this process holds no row of the batch: it adds nothing
        std::fill(G, G + n_params_, T(0));
        return 0.0;
    }
    return batch_gradient(P, X, Xs, Y, w, rows, n, G, weight_sum, false);
}

template <class T>
size_t Network<T>::release_workspace(size_t min_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (ws_.rows <= kChunkRows && ws_.train_rows <= kChunkRows) return 0;
    // The buffers sized by rows; the rest (the gradient, the packed first W,
    // the stochastic window's) is sized by the network and stays.
    size_t bytes = 0;
    for (const auto* vs : {&ws_.Z, &ws_.A})
        for (const auto& v : *vs) bytes += v.capacity() * sizeof(T);
    for (const auto* v : {&ws_.D0, &ws_.D1, &ws_.Xb, &ws_.Yb, &ws_.wb, &ws_.wf}) bytes += v->capacity() * sizeof(T);
    if (bytes < min_bytes) return 0;
    for (auto* vs : {&ws_.Z, &ws_.A}) std::vector<std::vector<T>>().swap(*vs);
    for (auto* v : {&ws_.D0, &ws_.D1, &ws_.Xb, &ws_.Yb, &ws_.wb, &ws_.wf}) std::vector<T>().swap(*v);
    ws_.rows = ws_.train_rows = 0;
    return bytes;
}

template <class T>
double Network<T>::apply_gradient_sum(T* P, T* G, double denom, const OptimizerConfig<T>& opt, T* s1, T* s2,
                                      int64_t* t) {
    if ((opt.kind == Optim::momentum || opt.kind == Optim::nesterov || opt.kind == Optim::adam) && !s1)
        throw std::invalid_argument("optimizer state buffer missing");
    if (opt.kind == Optim::adam && (!s2 || !t)) throw std::invalid_argument("adam state buffers missing");
    // As backward_batch: a batch whose weights are all zero contributes nothing.
    const double inv = denom > 0 ? 1.0 / denom : 0.0;
    const T scale = T(inv);
    const int nt = threads_for(double(n_params_), 150000.0);
    if (denom > 0 && !is_normal_reciprocal(inv, scale))  // G / D in double, rounded once
        parallel_for(n_params_, nt, [&](size_t k) { G[k] = T(double(G[k]) / denom); });
    else
        parallel_for(n_params_, nt, [&](size_t k) { G[k] *= scale; });
    const double pen = l2_penalty_and_grad(P, opt, denom, G);
    optimizer_step<T>(P, G, n_params_, opt, s1, s2, t);
    return pen;
}

template class Network<float>;
template class Network<double>;

}  // namespace dnnfast
