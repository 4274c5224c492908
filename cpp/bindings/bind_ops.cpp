// Bindings of the single ops (registries, activations, losses, linear layer,
// optimizer step): what the tests compare one by one with dnnfast.reference.
// Every function allocates its outputs; shapes are checked before any kernel
// sees a pointer.
#include <string>
#include <tuple>

#include "bindings/bindings.hpp"
#include "nn/activations.hpp"
#include "nn/checks.hpp"
#include "nn/linear.hpp"
#include "nn/losses.hpp"
#include "nn/optimizers.hpp"
#include "nn/sampling.hpp"
#include "nn/vmath.hpp"

namespace dnnfast::bindings {

namespace {

Act to_act(int id) {
    if (id < 0 || id >= kNumActivations) throw std::invalid_argument("activation: unknown id " + std::to_string(id));
    return static_cast<Act>(id);
}

Loss to_loss(int id) {
    if (id < 0 || id >= kNumLosses) throw std::invalid_argument("loss: unknown id " + std::to_string(id));
    return static_cast<Loss>(id);
}

template <class T>
void require_same_shape(const carray<T>& a, const carray<T>& b, const char* na, const char* nb) {
    require_2d(a, na);
    require_2d(b, nb);
    if (a.shape(0) != b.shape(0) || a.shape(1) != b.shape(1))
        throw std::invalid_argument(std::string(na) + " and " + nb + " must have the same shape");
}

// alpha: empty (no parameter), one value (scalar), or one per unit (prelu).
template <class T>
std::pair<const T*, size_t> alpha_arg(const carray<T>& alpha, size_t n_units) {
    if (alpha.ndim() != 1) throw std::invalid_argument("alpha must be 1-D");
    const size_t k = alpha.shape(0);
    if (k == 0) return {nullptr, 0};
    if (k == 1) return {alpha.data(), 0};
    if (k == n_units) return {alpha.data(), 1};
    throw std::invalid_argument("alpha must hold 0, 1 or one value per unit");
}

template <class T>
const T* row_weights(const std::optional<carray<T>>& w, size_t m) {
    if (!w) return nullptr;
    if (w->ndim() != 1 || size_t(w->shape(0)) != m) throw std::invalid_argument("w must be 1-D with one weight per row");
    return w->data();
}

template <class T>
void bind_ops_dtype(py::module_& m) {
    m.def("activation_forward", [](int act, const carray<T>& Z, const carray<T>& alpha) {
        require_2d(Z, "Z");
        const size_t r = Z.shape(0), c = Z.shape(1);
        auto [al, st] = alpha_arg(alpha, c);
        py::array_t<T> A({r, c});
        T* a = A.mutable_data();
        const Act ac = to_act(act);
        { ReleaseGil g; activation_forward<T>(ac, Z.data(), a, r, c, al, st); }
        return A;
    }, py::arg("act"), py::arg("Z"), py::arg("alpha"));

    m.def("activation_backward", [](int act, const carray<T>& Z, const carray<T>& A, const carray<T>& dA,
                                    const carray<T>& alpha) {
        require_same_shape(Z, A, "Z", "A");
        require_same_shape(Z, dA, "Z", "dA");
        const size_t r = Z.shape(0), c = Z.shape(1);
        auto [al, st] = alpha_arg(alpha, c);
        py::array_t<T> dZ({r, c});
        T* dz = dZ.mutable_data();
        const Act ac = to_act(act);
        { ReleaseGil g; activation_backward<T>(ac, Z.data(), A.data(), dA.data(), dz, r, c, al, st); }
        return dZ;
    }, py::arg("act"), py::arg("Z"), py::arg("A"), py::arg("dA"), py::arg("alpha"));

    m.def("prelu_alpha_backward", [](const carray<T>& Z, const carray<T>& dA) {
        require_same_shape(Z, dA, "Z", "dA");
        const size_t r = Z.shape(0), c = Z.shape(1);
        py::array_t<T> da(c);
        T* p = da.mutable_data();
        { ReleaseGil g; prelu_alpha_backward<T>(Z.data(), dA.data(), p, r, c); }
        return da;
    }, py::arg("Z"), py::arg("dA"));

    m.def("loss_forward", [](int loss, const carray<T>& Y, const carray<T>& Yhat, std::optional<carray<T>> w) {
        require_same_shape(Y, Yhat, "Y", "Yhat");
        const size_t r = Y.shape(0), c = Y.shape(1);
        const T* wp = row_weights(w, r);
        const Loss lo = to_loss(loss);
        ReleaseGil g;
        return loss_forward<T>(lo, Y.data(), Yhat.data(), r, c, wp);
    }, py::arg("loss"), py::arg("Y"), py::arg("Yhat"), py::arg("w") = py::none());

    m.def("loss_backward", [](int loss, const carray<T>& Y, const carray<T>& Yhat, double scale,
                              std::optional<carray<T>> w) {
        require_same_shape(Y, Yhat, "Y", "Yhat");
        const size_t r = Y.shape(0), c = Y.shape(1);
        const T* wp = row_weights(w, r);
        py::array_t<T> d({r, c});
        T* dp = d.mutable_data();
        const Loss lo = to_loss(loss);
        { ReleaseGil g; loss_backward<T>(lo, Y.data(), Yhat.data(), dp, r, c, T(scale), wp); }
        return d;
    }, py::arg("loss"), py::arg("Y"), py::arg("Yhat"), py::arg("scale"), py::arg("w") = py::none());

    m.def("output_backward_fused", [](const carray<T>& Y, const carray<T>& Yhat, double scale,
                                      std::optional<carray<T>> w, bool row_sum) {
        require_same_shape(Y, Yhat, "Y", "Yhat");
        const size_t r = Y.shape(0), c = Y.shape(1);
        const T* wp = row_weights(w, r);
        py::array_t<T> d({r, c});
        T* dp = d.mutable_data();
        { ReleaseGil g; output_backward_fused<T>(Y.data(), Yhat.data(), dp, r, c, T(scale), wp, row_sum); }
        return d;
    }, py::arg("Y"), py::arg("Yhat"), py::arg("scale"), py::arg("w") = py::none(), py::arg("row_sum") = false);

    m.def("linear_forward", [](const carray<T>& A, const carray<T>& W, const carray<T>& b) {
        require_2d(A, "A");
        require_2d(W, "W");
        const size_t n = A.shape(0), mi = A.shape(1), mo = W.shape(1);
        if (size_t(W.shape(0)) != mi) throw std::invalid_argument("W must have A.shape[1] rows");
        if (b.size() != py::ssize_t(mo)) throw std::invalid_argument("b must have W.shape[1] entries");
        py::array_t<T> Z({n, mo});
        T* z = Z.mutable_data();
        { ReleaseGil g; linear_forward<T>(z, A.data(), W.data(), b.data(), n, mi, mo); }
        return Z;
    }, py::arg("A"), py::arg("W"), py::arg("b"));

    m.def("linear_backward", [](const carray<T>& A, const carray<T>& W, const carray<T>& dZ) {
        require_2d(A, "A");
        require_2d(W, "W");
        require_2d(dZ, "dZ");
        const size_t n = A.shape(0), mi = A.shape(1), mo = W.shape(1);
        if (size_t(W.shape(0)) != mi) throw std::invalid_argument("W must have A.shape[1] rows");
        if (size_t(dZ.shape(0)) != n || size_t(dZ.shape(1)) != mo)
            throw std::invalid_argument("dZ must be A.shape[0] x W.shape[1]");
        py::array_t<T> dW({mi, mo}), db(std::vector<size_t>{1, mo}), dA({n, mi});
        T *pw = dW.mutable_data(), *pb = db.mutable_data(), *pa = dA.mutable_data();
        { ReleaseGil g; linear_backward<T>(pw, pb, pa, A.data(), W.data(), dZ.data(), n, mi, mo); }
        return py::make_tuple(dW, db, dA);
    }, py::arg("A"), py::arg("W"), py::arg("dZ"));

    m.def("dense_forward", [](const carray<T>& A, const carray<T>& W, const carray<T>& b, int act,
                              const carray<T>& alpha) {
        require_2d(A, "A");
        require_2d(W, "W");
        const size_t n = A.shape(0), mi = A.shape(1), mo = W.shape(1);
        if (size_t(W.shape(0)) != mi) throw std::invalid_argument("W must have A.shape[1] rows");
        if (b.size() != py::ssize_t(mo)) throw std::invalid_argument("b must have W.shape[1] entries");
        auto [al, st] = alpha_arg(alpha, mo);
        py::array_t<T> Z({n, mo}), Aout({n, mo});
        T *z = Z.mutable_data(), *ao = Aout.mutable_data();
        const Act ac = to_act(act);
        { ReleaseGil g; dense_forward<T>(z, ao, A.data(), W.data(), b.data(), n, mi, mo, ac, al, st); }
        return py::make_tuple(Z, Aout);
    }, py::arg("A"), py::arg("W"), py::arg("b"), py::arg("act"), py::arg("alpha"));

    m.def("dense_backward_input", [](const carray<T>& dZ, const carray<T>& W, const carray<T>& Z_prev,
                                     const carray<T>& A_prev, int act_prev, const carray<T>& alpha) {
        require_2d(dZ, "dZ");
        require_2d(W, "W");
        require_same_shape(Z_prev, A_prev, "Z_prev", "A_prev");
        const size_t n = dZ.shape(0), mo = dZ.shape(1), mi = W.shape(0);
        if (size_t(W.shape(1)) != mo) throw std::invalid_argument("W must have dZ.shape[1] columns");
        if (size_t(Z_prev.shape(0)) != n || size_t(Z_prev.shape(1)) != mi)
            throw std::invalid_argument("Z_prev must be dZ.shape[0] x W.shape[0]");
        auto [al, st] = alpha_arg(alpha, mi);
        py::array_t<T> D({n, mi});
        T* d = D.mutable_data();
        const Act ac = to_act(act_prev);
        { ReleaseGil g;
          dense_backward_input<T>(d, dZ.data(), W.data(), Z_prev.data(), A_prev.data(), n, mi, mo, ac, al, st); }
        return D;
    }, py::arg("dZ"), py::arg("W"), py::arg("Z_prev"), py::arg("A_prev"), py::arg("act_prev"), py::arg("alpha"));

    // X^T dZ_prev with dZ_prev = dense_backward_input(dZ, W, ...) never
    // stored whole (dense_backward_first_layer): X's rows are the batch's.
    m.def("dense_backward_first_layer", [](const carray<T>& X, const carray<T>& dZ, const carray<T>& W,
                                           const carray<T>& Z_prev, const carray<T>& A_prev, int act_prev,
                                           const carray<T>& alpha) {
        require_2d(X, "X");
        require_2d(dZ, "dZ");
        require_2d(W, "W");
        require_same_shape(Z_prev, A_prev, "Z_prev", "A_prev");
        const size_t n = dZ.shape(0), mo = dZ.shape(1), mi = W.shape(0), mx = X.shape(1);
        if (size_t(W.shape(1)) != mo) throw std::invalid_argument("W must have dZ.shape[1] columns");
        if (size_t(Z_prev.shape(0)) != n || size_t(Z_prev.shape(1)) != mi)
            throw std::invalid_argument("Z_prev must be dZ.shape[0] x W.shape[0]");
        if (size_t(X.shape(0)) != n) throw std::invalid_argument("X must have dZ.shape[0] rows");
        const Act ac = to_act(act_prev);
        if (ac == Act::softmax || ac == Act::prelu)
            throw std::invalid_argument("act_prev: softmax and prelu are not element-wise in one pass");
        auto [al, st] = alpha_arg(alpha, mi);
        py::array_t<T> G({mx, mi}), D({n, mi});  // D: scratch, left as allocated
        T *g = G.mutable_data(), *d = D.mutable_data();
        { ReleaseGil r;
          dense_backward_first_layer<T>(g, X.data(), mx, dZ.data(), W.data(), Z_prev.data(), A_prev.data(), n, mi, mo,
                                        ac, al, st, d); }
        return G;
    }, py::arg("X"), py::arg("dZ"), py::arg("W"), py::arg("Z_prev"), py::arg("A_prev"), py::arg("act_prev"),
       py::arg("alpha"));

    m.def("all_finite", [](const py::array_t<T, py::array::c_style>& X) {
        const T* x = X.data();
        const size_t n = X.size();
        ReleaseGil g;
        return all_finite<T>(x, n);
    }, py::arg("X").noconvert(), "True when no element is NaN or infinite.");

    m.def("column_sums", [](const carray<T>& X) {
        require_2d(X, "X");
        const size_t r = X.shape(0), c = X.shape(1);
        py::array_t<T> out(std::vector<size_t>{1, c});
        T* o = out.mutable_data();
        { ReleaseGil g; column_sums<T>(X.data(), o, r, c); }
        return out;
    }, py::arg("X"));

    m.def("sgd_update", [](py::array_t<T, py::array::c_style> P, const carray<T>& G, double lr) {
        if (P.size() != G.size()) throw std::invalid_argument("params and grads must have the same size");
        OptimizerConfig<T> opt;
        opt.kind = Optim::sgd;
        opt.learning_rate = T(lr);
        T* p = P.mutable_data();
        const size_t n = P.size();
        ReleaseGil g;
        optimizer_step<T>(p, G.data(), n, opt, nullptr, nullptr, nullptr);
    }, py::arg("params").noconvert(), py::arg("grads"), py::arg("learning_rate"),
       "In place: params -= learning_rate * grads.");

}

}  // namespace

void bind_ops(py::module_& m) {
    py::list acts, losses;
    for (const auto& a : kActivations)
        acts.append(py::make_tuple(a.name, int(a.act), a.has_param, a.default_param, a.per_unit));
    for (const auto& l : kLosses) losses.append(py::make_tuple(l.name, int(l.loss), l.fused_output));
    m.attr("ACTIVATIONS") = acts;  // (name, id, has_param, default_param, per_unit)
    m.attr("LOSSES") = losses;      // (name, id, fused_output_activation)
    m.def("vmath_kernel", []() { return std::string(active_vmath().name); },
          "Name of the vector-maths table the transcendental activations, softmax and cce use "
          "(follows gemm_set_kernel / DNNFAST_GEMM_KERNEL; generic512 uses the portable one).");
    m.def("legacy_shuffle", [](const py::object& bitgen, py::array_t<int64_t, py::array::c_style> x) {
        if (!PyCapsule_IsValid(bitgen.ptr(), "BitGenerator"))
            throw py::type_error("bitgen must be a NumPy bit generator's capsule (BitGenerator.capsule)");
        if (x.ndim() != 1) throw std::invalid_argument("x must be 1-D");
        if (!x.writeable()) throw std::invalid_argument("x must be writeable");
        const size_t n = size_t(x.shape(0));
        if (n > (size_t(1) << 32)) throw std::invalid_argument("x: more than 2**32 elements");
        const auto* g = static_cast<const NumpyBitGen*>(PyCapsule_GetPointer(bitgen.ptr(), "BitGenerator"));
        legacy_shuffle(*g, x.mutable_data(), n);  // with the GIL: the caller holds the generator's lock
    }, py::arg("bitgen"), py::arg("x").noconvert(),
       "x shuffled in place as numpy.random.RandomState.shuffle(x) does it with that bit generator: "
       "the same draws, so the same permutation and the same generator state after. The caller holds "
       "the bit generator's lock.");
    bind_ops_dtype<float>(m);
    bind_ops_dtype<double>(m);
}

}  // namespace dnnfast::bindings
