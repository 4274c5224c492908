#include "nn/linear.hpp"

#include <algorithm>
#include <stdexcept>

#include "nn/vmath.hpp"
#include "threads.hpp"

namespace dnnfast {

template <class T>
void column_sums(const T* X, T* out, size_t m, size_t n) {
    // Threads own disjoint column ranges and walk the rows in order: no
    // reduction is split, so the sums are the same for any thread count.
    const int nt = std::min<int>(threads_for(double(m) * double(n), kColumnSumMinWork), int(std::max<size_t>(1, n / 16)));
    const auto sums = active_vmath().template get<T>().column_sums;
    parallel_ranges(n, nt, [&](size_t j0, size_t j1) { sums(X + j0, n, m, j1 - j0, out + j0); });
}

template <class T>
void linear_forward(T* Z, const T* A, const T* W, const T* b, size_t n, size_t m_in, size_t m_out) {
    dense_forward<T>(Z, Z, A, W, b, n, m_in, m_out, Act::identity, nullptr, 0);
}

template <class T>
void linear_backward(T* dW, T* db, T* dA, const T* A, const T* W, const T* dZ, size_t n, size_t m_in,
                     size_t m_out) {
    gemm<T>(Trans::T, Trans::N, m_in, m_out, n, T(1), A, m_in, dZ, m_out, T(0), dW, m_out);
    column_sums(dZ, db, n, m_out);
    if (dA) gemm<T>(Trans::N, Trans::T, n, m_in, m_out, T(1), dZ, m_out, W, m_out, T(0), dA, m_in);
}

namespace {

template <class T>
struct ForwardEpilogue {
    Act act;
    const T* bias;
    const T* alpha;
    size_t alpha_stride;
    T* Z;       // the GEMM's C
    T* A;       // where sigma(Z) goes
    size_t ld;  // row stride of both

    static void run(const void* ctx, T* c, size_t, size_t i0, size_t j0, size_t m, size_t n) {
        const auto& e = *static_cast<const ForwardEpilogue*>(ctx);
        if (e.act == Act::softmax) {  // bias only; softmax needs whole rows
            for (size_t i = 0; i < m; ++i)
                for (size_t j = 0; j < n; ++j) c[i * e.ld + j] += e.bias[j0 + j];
            return;
        }
        activation_forward_block<T>(e.act, c, e.ld, e.A + i0 * e.ld + j0, e.ld, m, n, j0, e.bias, e.alpha,
                                    e.alpha_stride);
    }
};

template <class T>
struct BackwardEpilogue {
    Act act;
    const T* Z;
    const T* A;
    const T* alpha;
    size_t alpha_stride;
    size_t ld;

    static void run(const void* ctx, T* c, size_t ldc, size_t i0, size_t j0, size_t m, size_t n) {
        const auto& e = *static_cast<const BackwardEpilogue*>(ctx);
        const size_t o = i0 * e.ld + j0;
        activation_backward_block<T>(e.act, e.Z + o, e.ld, e.A + o, e.ld, c, ldc, c, ldc, m, n, j0, e.alpha,
                                     e.alpha_stride);
    }
};

// Z = product(epilogue), the epilogue adding the bias and applying an
// element-wise activation to each finished block; softmax after, on whole rows.
template <class T, class Product>
void dense_forward_by(T* Z, T* A_out, const T* b, size_t n, size_t m_out, Act act, const T* alpha,
                      size_t alpha_stride, const Product& product) {
    ForwardEpilogue<T> ctx{act, b, alpha, alpha_stride, Z, A_out, m_out};
    // A relu layer that keeps no Z (A on Z): the kernel may store relu(z + b) itself.
    const Epilogue<T> ep{&ForwardEpilogue<T>::run, &ctx, act == Act::relu && A_out == Z ? b : nullptr};
    product(&ep);
    if (act == Act::softmax) activation_forward<T>(Act::softmax, Z, A_out, n, m_out, nullptr, 0);
}

}  // namespace

template <class T>
void dense_forward(T* Z, T* A_out, const T* A_in, const T* W, const T* b, size_t n, size_t m_in,
                   size_t m_out, Act act, const T* alpha, size_t alpha_stride, size_t lda) {
    dense_forward_by(Z, A_out, b, n, m_out, act, alpha, alpha_stride, [&](const Epilogue<T>* ep) {
        gemm<T>(Trans::N, Trans::N, n, m_out, m_in, T(1), A_in, lda ? lda : m_in, W, m_out, T(0), Z, m_out, ep);
    });
}

template <class T>
void dense_forward(T* Z, T* A_out, const T* A_in, const PackedB<T>& W, const T* b, size_t n, Act act,
                   const T* alpha, size_t alpha_stride) {
    const size_t m_in = W.rows(), m_out = W.cols();
    dense_forward_by(Z, A_out, b, n, m_out, act, alpha, alpha_stride, [&](const Epilogue<T>* ep) {
        gemm_packed_b<T>(Trans::N, n, T(1), A_in, m_in, W, T(0), Z, m_out, ep);
    });
}

template <class T>
void dense_forward_row_after_step(T* Z, T* A_out, const T* x, T* W, const T* b, size_t m_in, size_t m_out,
                                  Act act, const T* alpha, size_t alpha_stride, T step, const T* u, const T* v) {
    dense_forward_by(Z, A_out, b, 1, m_out, act, alpha, alpha_stride, [&](const Epilogue<T>* ep) {
        gemm_rank1_gemv<T>(m_in, m_out, step, u, v, W, m_out, x, Z, ep);
    });
}

template <class T>
void dense_backward_input(T* D, const T* dZ, const T* W, const T* Z_prev, const T* A_prev, size_t n,
                          size_t m_in, size_t m_out, Act act_prev, const T* alpha, size_t alpha_stride) {
    if (act_prev == Act::softmax) {
        gemm<T>(Trans::N, Trans::T, n, m_in, m_out, T(1), dZ, m_out, W, m_out, T(0), D, m_in);
        activation_backward<T>(Act::softmax, Z_prev, A_prev, D, D, n, m_in, nullptr, 0);
        return;
    }
    BackwardEpilogue<T> ctx{act_prev, Z_prev, A_prev, alpha, alpha_stride, m_in};
    // relu' is z > 0, Z_prev laid out as D: the kernel may apply it as it stores D.
    Epilogue<T> ep{&BackwardEpilogue<T>::run, &ctx, nullptr, act_prev == Act::relu ? Z_prev : nullptr};
    gemm<T>(Trans::N, Trans::T, n, m_in, m_out, T(1), dZ, m_out, W, m_out, T(0), D, m_in, &ep);
}

template <class T>
void dense_backward_first_layer(T* G, const T* X, size_t x_ld, const T* dZ, const T* W, const T* Z_prev,
                                const T* A_prev, size_t n, size_t m_in, size_t m_out, Act act_prev, const T* alpha,
                                size_t alpha_stride, T* D) {
    if (act_prev == Act::softmax || act_prev == Act::prelu)
        throw std::logic_error("dense_backward_first_layer: softmax and prelu take the separate calls");
    BackwardEpilogue<T> ctx{act_prev, Z_prev, A_prev, alpha, alpha_stride, m_in};
    const Epilogue<T> ep{&BackwardEpilogue<T>::run, &ctx, nullptr, act_prev == Act::relu ? Z_prev : nullptr};
    gemm_chain<T>(n, m_in, m_out, dZ, m_out, W, m_out, &ep, x_ld, X, x_ld, G, m_in, D);
}

template <class T>
void dense_backward_input_row_then_step(T* D, const T* dZ, T* W, const T* Z_prev, const T* A_prev, size_t m_in,
                                        size_t m_out, Act act_prev, const T* alpha, size_t alpha_stride, T step) {
    if (act_prev == Act::softmax || act_prev == Act::prelu)
        throw std::logic_error("dense_backward_input_row_then_step: softmax and prelu take the separate calls");
    BackwardEpilogue<T> ctx{act_prev, Z_prev, A_prev, alpha, alpha_stride, m_in};
    const Epilogue<T> ep{&BackwardEpilogue<T>::run, &ctx, nullptr, nullptr};
    gemm_dot_rank1<T>(m_in, m_out, step, A_prev, dZ, W, m_out, D, &ep);
}

#define DNNFAST_INSTANTIATE_LINEAR(T)                                                                        \
    template void linear_forward<T>(T*, const T*, const T*, const T*, size_t, size_t, size_t);             \
    template void linear_backward<T>(T*, T*, T*, const T*, const T*, const T*, size_t, size_t, size_t);    \
    template void dense_forward<T>(T*, T*, const T*, const T*, const T*, size_t, size_t, size_t, Act,       \
                                   const T*, size_t, size_t);                                               \
    template void dense_forward<T>(T*, T*, const T*, const PackedB<T>&, const T*, size_t, Act, const T*,    \
                                   size_t);                                                                 \
    template void dense_forward_row_after_step<T>(T*, T*, const T*, T*, const T*, size_t, size_t, Act,      \
                                                  const T*, size_t, T, const T*, const T*);                 \
    template void dense_backward_input<T>(T*, const T*, const T*, const T*, const T*, size_t, size_t,       \
                                          size_t, Act, const T*, size_t);                                   \
    template void dense_backward_first_layer<T>(T*, const T*, size_t, const T*, const T*, const T*, const T*, \
                                                size_t, size_t, size_t, Act, const T*, size_t, T*);          \
    template void dense_backward_input_row_then_step<T>(T*, const T*, T*, const T*, const T*, size_t, size_t, \
                                                        Act, const T*, size_t, T);                          \
    template void column_sums<T>(const T*, T*, size_t, size_t);
DNNFAST_INSTANTIATE_LINEAR(float)
DNNFAST_INSTANTIATE_LINEAR(double)

}  // namespace dnnfast
