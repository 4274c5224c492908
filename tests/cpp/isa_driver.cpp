// The C++ core without Python, for CPUs the Python tests cannot reach here
// (tests/cpp/run_aarch64.sh builds it for aarch64 and runs it under
// qemu-aarch64): the fast GEMM against the reference kernel on every kernel
// table this CPU supports (shapes with edge tiles, the small-M, rank-1 and
// K > KC paths, all transposes, alpha/beta, both dtypes), the fused rank-1 +
// row product against the two calls it replaces, and a few ops. Prints the
// kernel in use; exits 1 on any failure.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gemm/gemm.hpp"
#include "gemm/gemm_kernels.hpp"
#include "nn/activations.hpp"
#include "nn/losses.hpp"

using namespace dnnfast;

namespace {

int failures = 0;

void check(bool ok, const char* what) {
    if (!ok) {
        ++failures;
        std::printf("FAIL: %s\n", what);
    }
}

template <class T>
T rtol();
template <>
float rtol<float>() { return 1e-5f; }
template <>
double rtol<double>() { return 1e-12; }

template <class T>
void gemm_case(size_t M, size_t N, size_t K, Trans ta, Trans tb, T alpha, T beta, std::mt19937& rng) {
    std::normal_distribution<double> nd;
    std::vector<T> A(M * K), B(K * N), C0(M * N);
    for (auto& x : A) x = T(nd(rng));
    for (auto& x : B) x = T(nd(rng));
    for (auto& x : C0) x = T(nd(rng));
    const size_t lda = ta == Trans::N ? K : M, ldb = tb == Trans::N ? N : K;
    std::vector<T> C = C0, R = C0;
    gemm<T>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), N);
    gemm_reference<T>(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, R.data(), N);
    // Error relative to max |alpha| |op(A)| |op(B)| + |beta C|: both round
    // each product and sum, in different orders.
    double scale = 1e-300, err = 0;
    for (size_t i = 0; i < M; ++i)
        for (size_t j = 0; j < N; ++j) {
            double s = 0;
            for (size_t k = 0; k < K; ++k) {
                const double a = ta == Trans::N ? A[i * lda + k] : A[k * lda + i];
                const double b = tb == Trans::N ? B[k * ldb + j] : B[j * ldb + k];
                s += std::fabs(a * b);
            }
            scale = std::fmax(scale, std::fabs(double(alpha)) * s + std::fabs(double(beta) * C0[i * N + j]));
            err = std::fmax(err, std::fabs(double(C[i * N + j]) - double(R[i * N + j])));
        }
    char what[160];
    std::snprintf(what, sizeof what, "%s gemm %s M=%zu N=%zu K=%zu ta=%d tb=%d alpha=%g beta=%g: error %.3g",
                  active_kernels().name, sizeof(T) == 4 ? "float" : "double", M, N, K, int(ta == Trans::T),
                  int(tb == Trans::T), double(alpha), double(beta), err / scale);
    check(err <= double(rtol<T>()) * scale, what);
}

template <class T>
void gemm_all(std::mt19937& rng) {
    const size_t shapes[][3] = {{1, 1, 1},  {1, 7, 5},    {5, 1, 9},     {7, 17, 9},   {13, 31, 257},
                                {29, 65, 193}, {1, 784, 256}, {784, 256, 1}, {37, 45, 1100}, {97, 130, 300}};
    for (const auto& s : shapes)
        for (Trans ta : {Trans::N, Trans::T})
            for (Trans tb : {Trans::N, Trans::T}) gemm_case<T>(s[0], s[1], s[2], ta, tb, T(1), T(0), rng);
    gemm_case<T>(15, 33, 65, Trans::N, Trans::T, T(0.5), T(-2), rng);
    gemm_case<T>(15, 33, 65, Trans::T, Trans::N, T(-1), T(1), rng);

    // The fused rank-1 update + row product is bit-identical to its two calls.
    const size_t K = 37, N = 45;
    std::normal_distribution<double> nd;
    std::vector<T> u(K), v(N), W(K * N), x(K);
    for (auto* vec : {&u, &v, &W, &x})
        for (auto& e : *vec) e = T(nd(rng));
    std::vector<T> W2 = W, y(N), y2(N);
    gemm_rank1_gemv<T>(K, N, T(-0.1), u.data(), v.data(), W.data(), N, x.data(), y.data());
    gemm<T>(Trans::T, Trans::N, K, N, 1, T(-0.1), u.data(), K, v.data(), N, T(1), W2.data(), N);
    gemm<T>(Trans::N, Trans::N, 1, N, K, T(1), x.data(), K, W2.data(), N, T(0), y2.data(), N);
    check(std::memcmp(W.data(), W2.data(), W.size() * sizeof(T)) == 0 &&
              std::memcmp(y.data(), y2.data(), y.size() * sizeof(T)) == 0,
          "gemm_rank1_gemv differs from the two gemm calls it fuses");

    // The fused product through W^T + step: y bit for bit the one-row
    // product, W the step within an ulp or two of the rank-1 update's.
    std::vector<T> W3 = W, W4 = W, yt(K), yt2(K);
    gemm_dot_rank1<T>(K, N, T(-0.1), u.data(), v.data(), W3.data(), N, yt.data());
    gemm<T>(Trans::N, Trans::T, 1, K, N, T(1), v.data(), N, W4.data(), N, T(0), yt2.data(), K);
    gemm<T>(Trans::T, Trans::N, K, N, 1, T(-0.1), u.data(), K, v.data(), N, T(1), W4.data(), N);
    double werr = 0;
    for (size_t i = 0; i < W3.size(); ++i) werr = std::fmax(werr, std::fabs(double(W3[i]) - double(W4[i])));
    check(std::memcmp(yt.data(), yt2.data(), yt.size() * sizeof(T)) == 0 && werr <= 8 * double(rtol<T>()),
          "gemm_dot_rank1 differs from the product and step it fuses");
}

template <class T>
void ops() {
    const size_t m = 3, n = 5;
    std::vector<T> Z(m * n), A(m * n);
    for (size_t i = 0; i < Z.size(); ++i) Z[i] = T(0.37 * double(i) - 2.5);
    activation_forward<T>(Act::relu, Z.data(), A.data(), m, n, nullptr, 0);
    bool ok = true;
    for (size_t i = 0; i < Z.size(); ++i) ok &= A[i] == (Z[i] > 0 ? Z[i] : T(0));
    check(ok, "relu forward");
    activation_forward<T>(Act::sigmoid, Z.data(), A.data(), m, n, nullptr, 0);
    ok = true;
    for (size_t i = 0; i < Z.size(); ++i) ok &= std::fabs(double(A[i]) - 1 / (1 + std::exp(-double(Z[i])))) < 1e-6;
    check(ok, "sigmoid forward");
    activation_forward<T>(Act::softmax, Z.data(), A.data(), m, n, nullptr, 0);
    ok = true;
    for (size_t i = 0; i < m; ++i) {
        double s = 0;
        for (size_t j = 0; j < n; ++j) s += A[i * n + j];
        ok &= std::fabs(s - 1) < 1e-6;
    }
    check(ok, "softmax rows sum to 1");
    std::vector<T> Y(m * n, T(0.5));
    double expect = 0;
    for (size_t i = 0; i < Z.size(); ++i) expect += (double(Z[i]) - 0.5) * (double(Z[i]) - 0.5);
    // The sum over rows of each row's mean squared error.
    const double mse = loss_forward<T>(Loss::mse, Y.data(), Z.data(), m, n, nullptr);
    check(std::fabs(mse - expect / double(n)) < 1e-5 * expect, "mse loss");
}

}  // namespace

int main() {
    std::printf("isa_driver: kernel %s (%s)\n", active_kernels().name, active_kernels().label);
    std::mt19937 rng(0);
    int tables = 0;
    for (const char* name : {"generic", "generic512", "avx2", "avx512"}) {
        if (!kernels_supported(name)) continue;
        set_active_kernels(name);
        ++tables;
        gemm_all<float>(rng);
        gemm_all<double>(rng);
    }
    set_active_kernels("auto");
    ops<float>();
    ops<double>();
    std::printf("isa_driver: %d kernel tables checked, %d failures\n", tables, failures);
    return failures == 0 && tables >= 2 ? 0 : 1;
}
