// The whole network: parameter layout, forward pass, loss and gradient, and
// the training loop of one epoch, all on raw pointers.
//
// Parameters live in one flat buffer P; layer l owns, in order,
//   W[l]  (m_in x m_out, row-major), b[l] (m_out), and for prelu alpha[l] (m_out).
// The gradient G has the same layout, so every optimizer is one loop over it.
//
// Workspaces (activations, deltas, the gradient, gathered batch rows) are
// sized once per batch size and reused: nothing is allocated inside an epoch.
//
// Threads: one call at a time owns the network's workspace (mutex_). predict
// and cost, which only read P, never wait for it: a call that finds it busy
// uses a workspace of its own, so predictions from several threads run side
// by side. The caller must not write P while another call reads it (the
// Python layer's per-model lock sees to that).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "gemm/gemm.hpp"
#include "gemm/packed_b.hpp"
#include "nn/activations.hpp"
#include "nn/losses.hpp"
#include "nn/optimizers.hpp"

namespace dnnfast {

struct LayerSpec {
    size_t m_in, m_out;
    Act act;
    double param;  // leaky_relu / elu alpha (prelu's alphas live in P)
    size_t w_off, b_off, alpha_off;
};


// Plain SGD (no penalty, no momentum) in small batches on a large first W
// (takes_window) takes its batches in windows of window_batches(batch)
// batches, at most kStochasticWindow rows (Network::train_window): the
// window's products with the first W as it was at the window's start, each
// batch's first-layer input corrected for the steps before it in the
// window, and one product of the window's rows for the first W's steps at
// its end. Step by step, a batch's product and its step are two sweeps of
// that W (one at one row a batch, the step fused with the next row's
// product); in windows, two a window. A chunk of an epoch (train_epoch on
// part of the order) starts a window, so the training driver cuts such
// epochs at whole windows.
//
// What the window adds -- the window's Gram matrix X X^T, each batch's
// correction, the per-batch work outside the GEMMs -- is paid back where a
// sweep of W costs more than it: for one row a batch once W is larger than
// L1; for batches of a few rows (up to kStochasticWindowSmallBatch) on the
// same Ws; for batches of up to kStochasticWindowMaxBatch rows only on a W
// that the caches do not hold (beyond kStochasticWindowLargeBytes), whose
// sweeps come from memory. Elsewhere those batches' products run at the
// GEMM's speed from cache and the window was as fast or slower
// (BENCHMARKS.md, "Measurements behind the code": kStochasticWindow,
// Network::train_window).
constexpr size_t kStochasticWindow = 32;
constexpr size_t kStochasticWindowMinBytes = 32 * 1024;
constexpr size_t kStochasticWindowSmallBatch = 4;
constexpr size_t kStochasticWindowLargeBytes = size_t(8) << 20;
constexpr size_t kStochasticWindowMaxBatch = 16;
static_assert(kStochasticWindowMaxBatch <= kStochasticWindow / 2, "a window holds at least two batches");

// Whether plain-SGD batches of `batch` rows on a first W of w_bytes go in windows.
constexpr bool takes_window(size_t batch, size_t w_bytes) {
    return batch >= 1 && (batch <= kStochasticWindowSmallBatch ? w_bytes > kStochasticWindowMinBytes
                                                               : batch <= kStochasticWindowMaxBatch &&
                                                                     w_bytes > kStochasticWindowLargeBytes);
}

// Batches of `batch` rows per window where they go in windows (as many
// whole ones as kStochasticWindow rows hold).
constexpr size_t window_batches(size_t batch) {
    return batch >= 1 && batch <= kStochasticWindowMaxBatch ? kStochasticWindow / batch : 1;
}

// Rows per chunk for predict / cost on large inputs: bounds the workspace
// while keeping the GEMMs big enough to run at full speed.
constexpr size_t kChunkRows = 1024;

// Rows of the chunk of predict / cost that starts at row i0 of n: kChunkRows,
// or the rest, but never leaving a last chunk of 1..kGemmSmallRows rows,
// whose products would take the GEMM's small-M path and round otherwise
// than the same rows in one call (predict(X[:1025]) differed from
// predict(X)[:1025] in its last row): the chunk before it gives it rows.
// (Python's chunks of a sparse X made dense are these too: chunk_rows.)
inline size_t chunk_at(size_t i0, size_t n) {
    const size_t m = std::min(kChunkRows, n - i0);
    const size_t rest = n - i0 - m;
    return rest > 0 && rest <= kGemmSmallRows ? m - (kGemmSmallRows + 1 - rest) : m;
}

// A sparse X in scipy's CSR form: row r's stored values are data[indptr[r]
// .. indptr[r + 1]), in columns indices[...] (each in [0, m_x), indptr
// non-decreasing from 0: the binding checks both before a Network sees
// them). The first layer's product, and its weight gradient, then go over
// the stored values only (VMathFns::csr_times, csr_scatter) instead of
// the rows made dense: a row of 20 values among 20000 columns costs 20
// rows of W, not all 20000. The results are the dense X's to round-off,
// not bit for bit: the GEMM adds each output's products in its own
// blocks, these in the row's order.
template <class T>
struct CsrRows {
    const int64_t* indptr = nullptr;
    const int64_t* indices = nullptr;
    const T* data = nullptr;
    size_t n_rows = 0;
};

struct EpochResult {
    double cost_sum = 0;     // sum over batches of n_batch * (data cost of the batch)
    double penalty_sum = 0;  // sum over batches of n_batch * (L2 penalty of the batch)
    size_t updates = 0;
};

template <class T>
class Network {
public:
    // sizes: m_x, m_h[1], ..., m_y; acts/params: one per layer.
    Network(const std::vector<size_t>& sizes, const std::vector<Act>& acts, const std::vector<double>& params,
            Loss loss, bool fused_output);

    size_t num_layers() const { return layers_.size(); }
    size_t num_params() const { return n_params_; }
    const LayerSpec& layer(size_t l) const { return layers_[l]; }
    Loss loss() const { return loss_; }
    bool fused() const { return fused_; }

    // All layers' Z and A for n rows into caller buffers Zs[l], As[l] (n x m_out[l]).
    void forward(const T* P, const T* X, size_t n, T* const* Zs, T* const* As);
    // Yhat (n x m_y), rows processed in chunks with a bounded workspace.
    void predict(const T* P, const T* X, size_t n, T* Yhat);
    void predict(const T* P, const CsrRows<T>& X, T* Yhat);
    // C = sum_i w_i J_i / D over rows (D = sum of w, or n), chunked like predict.
    double cost(const T* P, const T* X, const T* Y, const T* w, size_t n);
    double cost(const T* P, const CsrRows<T>& X, const T* Y, const T* w);
    // Cost and flat gradient over the rows `rows` (or 0..n-1 when null); the
    // L2 penalty is added to both when l2 > 0. Returns the data cost; the
    // penalty goes to *penalty.
    double loss_and_gradient(const T* P, const T* X, const T* Y, const T* w, const int64_t* rows, size_t n,
                             T l2, T* G, double* penalty);
    double loss_and_gradient(const T* P, const CsrRows<T>& X, const T* Y, const T* w, const int64_t* rows, size_t n,
                             T l2, T* G, double* penalty);
    // One epoch: batches of `batch` rows taken from `order` (row indices of X),
    // one optimizer step per batch. state1/state2 are the optimizer's buffers
    // (velocity; Adam's m and v), each num_params() long or null when unused;
    // *t counts Adam's steps. cost_sum / penalty_sum start the result's sums
    // (a chunk of an epoch continues the epoch's running totals).
    EpochResult train_epoch(T* P, const T* X, const T* Y, const T* w, size_t n_rows, const int64_t* order,
                            size_t n_order, size_t batch, const OptimizerConfig<T>& opt, T* state1, T* state2,
                            int64_t* t, double cost_sum = 0, double penalty_sum = 0);
    // The same on a sparse X (no windows, no packed first W: its steps
    // touch only the first W's rows of the batch's columns).
    EpochResult train_epoch(T* P, const CsrRows<T>& X, const T* Y, const T* w, const int64_t* order, size_t n_order,
                            size_t batch, const OptimizerConfig<T>& opt, T* state1, T* state2, int64_t* t,
                            double cost_sum = 0, double penalty_sum = 0);

    // Data-parallel training (python/dnnfast/distributed.py) splits one step
    // of train_epoch in two, with the sum over processes in between:
    // gradient_sum writes G = d/dP sum_i w_i J_i over the rows `rows` (n may be
    // 0: G = 0), NOT divided by the batch's D, and returns sum_i w_i J_i, with
    // sum_i w_i (or n) in *weight_sum;
    double gradient_sum(const T* P, const T* X, const T* Y, const T* w, const int64_t* rows, size_t n, T* G,
                        double* weight_sum);
    double gradient_sum(const T* P, const CsrRows<T>& X, const T* Y, const T* w, const int64_t* rows, size_t n, T* G,
                        double* weight_sum);
    // apply_gradient_sum takes the summed G of a batch of total weight D,
    // divides it by D, adds the L2 term and takes the optimizer step, as
    // train_epoch does; returns the penalty 0.5 l2 sum(W^2) / D.
    // Gives back a workspace sized for more rows than a predict chunk (a
    // full batch, a gradient over all rows) when it holds at least
    // `min_bytes`: the model keeps no more memory than mini-batch training
    // and predict need once the call or fit that wanted it is over. Returns
    // the bytes freed.
    size_t release_workspace(size_t min_bytes = 0);
    double apply_gradient_sum(T* P, T* G, double denom, const OptimizerConfig<T>& opt, T* state1, T* state2,
                              int64_t* t);

private:
    // Activations Z, A for up to `rows` rows; for training also the deltas,
    // the gradient, the gathered batch rows (up to `train_rows`), and, for
    // stochastic SGD, the first layer's step W -= lr u v^T (u = the row, v =
    // its dZ), which waits for the next row's forward pass to be made in the
    // same sweep over W (train_epoch, backward_batch with first_dz).
    struct Workspace {
        size_t rows = 0, train_rows = 0;
        std::vector<std::vector<T>> Z, A;
        std::vector<T> D0, D1, G, Xb, Yb, wb;  // Xb: m_x + 1 wide (Network::bias_by_product)
        std::vector<T> wf;  // the batch's row factors w_i / D (backward_batch)
        std::vector<T> step_u, step_v;
        bool step_pending = false;
        // The window's rows, X W, X X^T and first-layer dZ (train_window).
        std::vector<T> win_x, win_z, win_gram, win_dz;
        // Plain SGD, batches of more than a few rows: the first layer's W
        // lives here, packed, from the first batch of train_epoch to its
        // end (P's copy is stale meanwhile), so it is never packed again.
        PackedB<T> W0;
        bool w0_packed = false;
    };
    void ensure_workspace(Workspace& ws, size_t rows, bool training, bool dense_x = true) const;
    // A batch's rows: of a dense X (x, x_ld apart) or of a sparse one (csr:
    // rows idx[0..n), or r0 + i where idx is null).
    struct Batch {
        const T* x = nullptr;
        size_t x_ld = 0;
        const CsrRows<T>* csr = nullptr;
        const int64_t* idx = nullptr;
        size_t r0 = 0;
    };
    // The first layer's Z and A of a sparse batch (its rows' product with
    // W, + b, the activation); forward_batch from layer 1 takes it on.
    void sparse_first_layer(Workspace& ws, const T* P, const Batch& b, size_t n) const;
    void first_layer_output(Workspace& ws, const T* P, size_t n) const;
    void forward_chunk(Workspace& ws, const T* P, const T* X, const CsrRows<T>* Xs, size_t i0, size_t m) const;
    void chunked_predict(const T* P, const T* X, const CsrRows<T>* Xs, size_t n, T* Yhat);
    double chunked_cost(const T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w, size_t n);
    // The first layer's weight gradient from a sparse batch: GW = s X_b^T dZ
    // (from_zero: G's W block, s = 1), or GW += s X_b^T dZ (W itself, s =
    // -lr: plain SGD's step in place, on the rows of the batch's columns).
    void sparse_first_gradient(const Batch& b, size_t n, const T* dZ, T s, T* GW, bool from_zero) const;
    EpochResult train_steps(T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w, size_t n_rows,
                            const int64_t* order, size_t n_order, size_t batch, const OptimizerConfig<T>& opt,
                            T* state1, T* state2, int64_t* t, double cost_sum, double penalty_sum);
    double batch_gradient(const T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w, const int64_t* rows,
                          size_t n, T* G, double* weight_sum, bool divide);
    // loss_and_gradient and gradient_sum on a dense X or a sparse Xs (the one not null).
    double loss_and_gradient_of(const T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w,
                                const int64_t* rows, size_t n, T l2, T* G, double* penalty);
    double gradient_sum_of(const T* P, const T* X, const CsrRows<T>* Xs, const T* Y, const T* w,
                           const int64_t* rows, size_t n, T* G, double* weight_sum);
    // X's rows are x_ld apart (0: m_x, the input's width).
    void forward_batch(Workspace& ws, const T* P, const T* X, size_t n, size_t first_layer = 0,
                       size_t x_ld = 0) const;
    const T* output(const Workspace& ws) const;
    T* pre_activation(Workspace& ws, size_t l) const;
    double backward_batch(const T* P, const T* X, const T* Y, const T* w, size_t n, double denom, T* G, T* P_sgd,
                          T sgd_lr, T* first_dz = nullptr, size_t x_ld = 0, const Batch* sparse = nullptr,
                          T sgd_decay = T(0), double* sgd_squares = nullptr);
    bool bias_by_product(size_t n) const;
    void train_window(T* P, const T* X, const T* Y, const T* w, const int64_t* idx, size_t k, size_t batch, T lr,
                      EpochResult& res);
    double l2_penalty_and_grad(const T* P, const OptimizerConfig<T>& opt, double denom, T* G);
    static double l2_coefficient(const OptimizerConfig<T>& opt, double denom);
    static double l2_penalty(const OptimizerConfig<T>& opt, double denom, double squares);
    void keep_first_packed(T* P, bool keep);
    const T* layer_alpha(const T* P, size_t l) const;
    size_t layer_alpha_stride(size_t l) const;

    std::vector<LayerSpec> layers_;
    Loss loss_;
    bool fused_;
    size_t n_params_ = 0, m_x_ = 0, m_y_ = 0, max_width_ = 0;
    std::vector<T> act_params_;  // scalar activation parameters, one per layer

    Workspace ws_;
    std::mutex mutex_;  // held by the one call using ws_
};

}  // namespace dnnfast
