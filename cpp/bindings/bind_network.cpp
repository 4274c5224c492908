// Bindings of the C++ Network (one class per dtype: Network32, Network64).
// The parameters live in a NumPy array owned by Python and are passed to each
// call, so Python keeps the flat buffer and its per-layer views.
#include <string>
#include <vector>

#include "bindings/bindings.hpp"
#include "nn/checks.hpp"
#include "nn/network.hpp"

namespace dnnfast::bindings {

namespace {

// The settings of a training call (train_epoch, apply_gradient_sum): one
// object instead of a row of positional numbers. Built from keyword
// arguments; Python (dnnfast._train) validates them with messages naming the
// user's arguments, this only refuses what would be undefined in C++.
struct TrainOptions {
    int optimizer = 0;  // an id of kOptimizers
    double learning_rate = 0.01, momentum = 0.9, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
    double l2 = 0.0, weight_decay = 0.0;  // see OptimizerConfig
    size_t batch_size = 1;

    template <class T>
    OptimizerConfig<T> config() const {
        if (optimizer < 0 || optimizer >= kNumOptimizers) throw std::invalid_argument("optimizer: unknown id");
        OptimizerConfig<T> opt;
        opt.kind = kOptimizers[optimizer].id;
        opt.learning_rate = T(learning_rate);
        opt.momentum = T(momentum);
        opt.beta1 = T(beta1);
        opt.beta2 = T(beta2);
        opt.epsilon = T(epsilon);
        opt.l2 = T(l2);
        opt.weight_decay = T(weight_decay);
        return opt;
    }
};

int optimizer_id(const py::object& o) {
    if (py::isinstance<py::str>(o)) {
        const std::string name = o.cast<std::string>();
        for (const OptimizerInfo& info : kOptimizers)
            if (name == info.name) return int(info.id);
        throw std::invalid_argument("optimizer: unknown name '" + name + "'");
    }
    const int id = o.cast<int>();
    if (id < 0 || id >= kNumOptimizers) throw std::invalid_argument("optimizer: unknown id");
    return id;
}

size_t checked_batch_size(size_t n) {
    if (n == 0) throw std::invalid_argument("batch_size must be positive");
    return n;
}

// A sparse X (scipy's CSR arrays) for the Network's calls on one, checked
// here, once, before any Network sees a pointer: indptr from 0,
// non-decreasing, to the number of values; every column index in [0,
// n_cols); every value finite. (dnnfast's Python checks the matrix first and
// names the user's argument; this refuses whatever would read out of
// bounds.) The index arrays are copied first and checked in the copy, which
// the Network then reads: the caller's arrays (a user's scipy matrix) may
// change after the check, and a column index changed mid-fit would have
// read and written outside W and its gradient. The values are kept by
// reference: a value changed later is a wrong result, never an access out
// of bounds.
template <class T>
struct CsrPy {
    std::vector<int64_t> indptr, indices;
    carray<T> data;
    size_t n_rows, n_cols;

    CsrPy(const carray<int64_t>& indptr_, const carray<int64_t>& indices_, carray<T> data_, size_t n_cols_)
        : data(std::move(data_)), n_cols(n_cols_) {
        if (indptr_.ndim() != 1 || indptr_.shape(0) < 1)
            throw std::invalid_argument("indptr: expected a 1-D array of n_rows + 1");
        if (indices_.ndim() != 1 || data.ndim() != 1 || indices_.shape(0) != data.shape(0))
            throw std::invalid_argument("indices, data: expected 1-D arrays of one length");
        indptr.assign(indptr_.data(), indptr_.data() + indptr_.shape(0));
        indices.assign(indices_.data(), indices_.data() + indices_.shape(0));
        n_rows = indptr.size() - 1;
        const int64_t* p = indptr.data();
        const int64_t* j = indices.data();
        const int64_t nnz = int64_t(indices.size()), cols = int64_t(n_cols);
        bool ok_ptr = p[0] == 0 && p[n_rows] == nnz, ok_idx = true, finite = true;
        {
            ReleaseGil g;
            for (size_t r = 0; ok_ptr && r < n_rows; ++r) ok_ptr = p[r] <= p[r + 1];
            int64_t bad = 0;
            for (int64_t k = 0; k < nnz; ++k) bad |= int64_t(uint64_t(j[k]) >= uint64_t(cols));
            ok_idx = bad == 0;
            finite = all_finite<T>(data.data(), size_t(nnz));
        }
        if (!ok_ptr) throw std::invalid_argument("indptr: must rise from 0 to the number of values");
        if (!ok_idx) throw std::invalid_argument("indices: a column index out of range");
        if (!finite) throw py::value_error("X contains NaN or infinity");
    }
    CsrRows<T> rows() const { return CsrRows<T>{indptr.data(), indices.data(), data.data(), n_rows}; }
};

template <class T>
struct NetworkPy {
    Network<T> net;

    NetworkPy(const std::vector<size_t>& sizes, const std::vector<int>& acts, const std::vector<double>& params,
              int loss, bool fused)
        : net(sizes, to_acts(acts), params, to_loss(loss), fused) {}

    static std::vector<Act> to_acts(const std::vector<int>& ids) {
        std::vector<Act> out;
        for (int id : ids) {
            if (id < 0 || id >= kNumActivations) throw std::invalid_argument("activations: unknown id");
            out.push_back(static_cast<Act>(id));
        }
        return out;
    }
    static Loss to_loss(int id) {
        if (id < 0 || id >= kNumLosses) throw std::invalid_argument("loss: unknown id");
        return static_cast<Loss>(id);
    }

    size_t m_x() const { return net.layer(0).m_in; }
    size_t m_y() const { return net.layer(net.num_layers() - 1).m_out; }

    void check_params(const py::array& P) const {
        if (P.ndim() != 1 || size_t(P.shape(0)) != net.num_params())
            throw std::invalid_argument("params: expected a 1-D array of " + std::to_string(net.num_params()));
    }
    void check_grad(const py::array& G) const {
        if (G.ndim() != 1 || size_t(G.shape(0)) != net.num_params())
            throw std::invalid_argument("grad: expected a 1-D array like params");
    }
    size_t check_X(const carray<T>& X) const {
        require_2d(X, "X");
        if (size_t(X.shape(1)) != m_x()) throw std::invalid_argument("X: wrong number of columns");
        return X.shape(0);
    }
    void check_Y(const carray<T>& Y, size_t rows) const {
        require_2d(Y, "Y");
        if (size_t(Y.shape(0)) != rows || size_t(Y.shape(1)) != m_y())
            throw std::invalid_argument("Y: expected shape (n, m_y)");
    }
    const T* check_w(const std::optional<carray<T>>& w, size_t rows) const {
        if (!w) return nullptr;
        if (w->ndim() != 1 || size_t(w->shape(0)) != rows)
            throw std::invalid_argument("sample_weight: expected one weight per row");
        return w->data();
    }

    py::list layout() const {
        py::list out;
        for (size_t l = 0; l < net.num_layers(); ++l) {
            const LayerSpec& s = net.layer(l);
            py::dict d;
            d["m_in"] = s.m_in;
            d["m_out"] = s.m_out;
            d["w_offset"] = s.w_off;
            d["b_offset"] = s.b_off;
            d["alpha_offset"] = s.alpha_off == SIZE_MAX ? py::object(py::none()) : py::object(py::int_(s.alpha_off));
            out.append(d);
        }
        return out;
    }

    size_t check_X(const CsrPy<T>& X) const {
        if (X.n_cols != m_x()) throw std::invalid_argument("X: wrong number of columns");
        return X.n_rows;
    }
    static const int64_t* check_rows(const py::array_t<int64_t, py::array::c_style>& rows, size_t n_rows) {
        if (rows.ndim() != 1) throw std::invalid_argument("rows must be 1-D");
        const int64_t* rp = rows.data();
        for (size_t i = 0, n = rows.shape(0); i < n; ++i)
            if (rp[i] < 0 || size_t(rp[i]) >= n_rows) throw std::invalid_argument("rows: index out of range");
        return rp;
    }

    py::tuple forward(const carray<T>& P, const carray<T>& X) {
        check_params(P);
        const size_t n = check_X(X);
        py::list Zs, As;
        std::vector<T*> zp, ap;
        for (size_t l = 0; l < net.num_layers(); ++l) {
            py::array_t<T> Z({n, net.layer(l).m_out}), A({n, net.layer(l).m_out});
            zp.push_back(Z.mutable_data());
            ap.push_back(A.mutable_data());
            Zs.append(Z);
            As.append(A);
        }
        { ReleaseGil g; net.forward(P.data(), X.data(), n, zp.data(), ap.data()); }
        return py::make_tuple(Zs, As);
    }

    // Checks that X is finite itself (Network.predict leaves it to this
    // call): one pass fewer through Python on a one-row predict.
    // check_output=false: the estimators' validation score during a fit,
    // which records a diverged model's NaN as scikit-learn does.
    py::array_t<T> predict(const carray<T>& P, const carray<T>& X, bool check_output) {
        check_params(P);
        return predict_rows(P, X, check_X(X), check_output);
    }
    // predict's work on an X already checked to have n rows of m_x.
    py::array_t<T> predict_rows(const carray<T>& P, const carray<T>& X, size_t n, bool check_output) {
        py::array_t<T> Y({n, m_y()});
        T* y = Y.mutable_data();
        bool finite, out_finite = true;
        {
            ReleaseGil g;
            finite = all_finite<T>(X.data(), n * m_x());
            if (finite) {
                net.predict(P.data(), X.data(), n, y);
                if (check_output) out_finite = all_finite<T>(y, n * m_y());
            }
        }
        if (!finite) throw py::value_error("X contains NaN or infinity");
        // Finite X, finite parameters and yet a non-finite output: X or the
        // weights are too large for the dtype. Said here, never returned.
        if (!out_finite)
            throw py::value_error(std::string("predict: the output overflowed to NaN or infinity in ") +
                                  (sizeof(T) == 4 ? "float32" : "float64") +
                                  " (X or the parameters are too large for this dtype; scale X, or use float64)");
        return Y;
    }

    // The same on a sparse X (its values checked finite when it was made).
    py::array_t<T> predict_csr(const carray<T>& P, const CsrPy<T>& X, bool check_output) {
        check_params(P);
        const size_t n = check_X(X);
        py::array_t<T> Y({n, m_y()});
        T* y = Y.mutable_data();
        bool out_finite = true;
        {
            ReleaseGil g;
            net.predict(P.data(), X.rows(), y);
            if (check_output) out_finite = all_finite<T>(y, n * m_y());
        }
        if (!out_finite)
            throw py::value_error(std::string("predict: the output overflowed to NaN or infinity in ") +
                                  (sizeof(T) == 4 ? "float32" : "float64") +
                                  " (X or the parameters are too large for this dtype; scale X, or use float64)");
        return Y;
    }

    // Network.predict's fast path: predict(P, X) when X is exactly an
    // ndarray (no subclass) of T, C-contiguous, 2-D with m_x columns and 1 to
    // max_rows rows (below the memory check's floor), else None, and Python
    // validates X in full. The tests that Python made for every call were a
    // large part of a small network's one-row predict (BENCHMARKS.md,
    // "Measurements behind the code": predict_as_is).
    py::object predict_as_is(const carray<T>& P, py::handle X, size_t max_rows) {
        const auto& api = py::detail::npy_api::get();
        if (Py_TYPE(X.ptr()) != api.PyArray_Type_ || !carray<T>::check_(X)) return py::none();
        const auto x = py::reinterpret_borrow<carray<T>>(X);
        if (x.ndim() != 2 || size_t(x.shape(1)) != m_x() || x.shape(0) < 1 || size_t(x.shape(0)) > max_rows)
            return py::none();
        check_params(P);
        return predict_rows(P, x, size_t(x.shape(0)), true);
    }

    double cost(const carray<T>& P, const carray<T>& X, const carray<T>& Y, std::optional<carray<T>> w) {
        check_params(P);
        const size_t n = check_X(X);
        check_Y(Y, n);
        const T* wp = check_w(w, n);
        ReleaseGil g;
        return net.cost(P.data(), X.data(), Y.data(), wp, n);
    }
    double cost_csr(const carray<T>& P, const CsrPy<T>& X, const carray<T>& Y, std::optional<carray<T>> w) {
        check_params(P);
        const size_t n = check_X(X);
        check_Y(Y, n);
        const T* wp = check_w(w, n);
        const CsrRows<T> x = X.rows();
        ReleaseGil g;
        return net.cost(P.data(), x, Y.data(), wp);
    }

    // X: a dense carray<T> or a CsrPy<T>.
    static const T* x_data(const carray<T>& X) { return X.data(); }
    static CsrRows<T> x_data(const CsrPy<T>& X) { return X.rows(); }

    template <class XA>
    py::tuple loss_and_gradient(const carray<T>& P, const XA& X, const carray<T>& Y, std::optional<carray<T>> w,
                                std::optional<py::array_t<int64_t, py::array::c_style>> rows, double l2,
                                py::array_t<T, py::array::c_style> G) {
        check_params(P);
        const size_t n_rows = check_X(X);
        check_Y(Y, n_rows);
        const T* wp = check_w(w, n_rows);
        check_grad(G);
        const int64_t* rp = rows ? check_rows(*rows, n_rows) : nullptr;
        const size_t n = rows ? size_t(rows->shape(0)) : n_rows;
        if (n == 0) throw std::invalid_argument("no rows");
        T* g = G.mutable_data();
        double pen = 0, c = 0;
        const auto x = x_data(X);
        { ReleaseGil rel; c = net.loss_and_gradient(P.data(), x, Y.data(), wp, rp, n, T(l2), g, &pen); }
        return py::make_tuple(c, pen);
    }

    using OptState = std::optional<py::array_t<T, py::array::c_style>>;
    using StepCount = std::optional<py::array_t<int64_t, py::array::c_style>>;

    // An optimizer's state buffer (num_params long) or null when not given.
    T* state(OptState& s) const {
        if (!s) return nullptr;
        if (s->ndim() != 1 || size_t(s->shape(0)) != net.num_params())
            throw std::invalid_argument("optimizer state: expected a 1-D array like params");
        return s->mutable_data();
    }
    static int64_t* step_count(StepCount& t) {
        if (!t) return nullptr;
        if (t->size() != 1) throw std::invalid_argument("t: expected one step counter");
        return t->mutable_data();
    }
    // Runs the batches of `order` (whole batches of options.batch_size rows;
    // the driver passes an epoch's order in chunks). cost_sum / penalty_sum:
    // the running totals of the epoch so far, continued here batch by batch,
    // so the epoch's sums have the same bits however the order was chunked.
    // X: a dense carray<T> or a CsrPy<T>.
    template <class XA>
    py::tuple train_epoch(py::array_t<T, py::array::c_style> P, const XA& X, const carray<T>& Y,
                          std::optional<carray<T>> w, const py::array_t<int64_t, py::array::c_style>& order,
                          const TrainOptions& options, OptState s1, OptState s2, StepCount t, double cost_sum,
                          double penalty_sum) {
        check_params(P);
        const size_t n_rows = check_X(X);
        check_Y(Y, n_rows);
        const T* wp = check_w(w, n_rows);
        if (order.ndim() != 1) throw std::invalid_argument("order must be 1-D");
        const OptimizerConfig<T> opt = options.config<T>();
        T* sp1 = state(s1);
        T* sp2 = state(s2);
        int64_t* tp = step_count(t);
        T* p = P.mutable_data();
        const auto x = x_data(X);
        EpochResult r;
        {
            ReleaseGil g;
            r = epoch(p, x, n_rows, Y.data(), wp, order.data(), order.shape(0), options.batch_size, opt, sp1, sp2,
                      tp, cost_sum, penalty_sum);
        }
        return py::make_tuple(r.cost_sum, r.penalty_sum, r.updates);
    }
    EpochResult epoch(T* p, const T* x, size_t n_rows, const T* y, const T* w, const int64_t* order, size_t n_order,
                      size_t batch, const OptimizerConfig<T>& opt, T* s1, T* s2, int64_t* t, double cost_sum,
                      double penalty_sum) {
        return net.train_epoch(p, x, y, w, n_rows, order, n_order, batch, opt, s1, s2, t, cost_sum, penalty_sum);
    }
    EpochResult epoch(T* p, const CsrRows<T>& x, size_t, const T* y, const T* w, const int64_t* order, size_t n_order,
                      size_t batch, const OptimizerConfig<T>& opt, T* s1, T* s2, int64_t* t, double cost_sum,
                      double penalty_sum) {
        return net.train_epoch(p, x, y, w, order, n_order, batch, opt, s1, s2, t, cost_sum, penalty_sum);
    }

    // Data-parallel training's two halves of a step (see network.hpp).
    template <class XA>
    py::tuple gradient_sum(const carray<T>& P, const XA& X, const carray<T>& Y, std::optional<carray<T>> w,
                           const py::array_t<int64_t, py::array::c_style>& rows,
                           py::array_t<T, py::array::c_style> G) {
        check_params(P);
        const size_t n_rows = check_X(X);
        check_Y(Y, n_rows);
        const T* wp = check_w(w, n_rows);
        check_grad(G);
        const int64_t* rp = check_rows(rows, n_rows);
        const size_t n = rows.shape(0);
        T* g = G.mutable_data();
        double J = 0, wsum = 0;
        const auto x = x_data(X);
        { ReleaseGil rel; J = net.gradient_sum(P.data(), x, Y.data(), wp, rp, n, g, &wsum); }
        return py::make_tuple(J, wsum);
    }

    size_t release_workspace(size_t min_bytes) {
        ReleaseGil rel;  // waits for a call in another thread to end (the network's mutex)
        return net.release_workspace(min_bytes);
    }

    double apply_gradient_sum(py::array_t<T, py::array::c_style> P, py::array_t<T, py::array::c_style> G,
                              double denom, const TrainOptions& options, OptState s1, OptState s2,
                              StepCount t) {
        check_params(P);
        check_grad(G);
        if (!(denom >= 0)) throw std::invalid_argument("denom must be >= 0");
        const OptimizerConfig<T> opt = options.config<T>();
        T* sp1 = state(s1);
        T* sp2 = state(s2);
        int64_t* tp = step_count(t);
        T* p = P.mutable_data();
        T* g = G.mutable_data();
        ReleaseGil rel;
        return net.apply_gradient_sum(p, g, denom, opt, sp1, sp2, tp);
    }
};

// One step of the options' optimizer on flat buffers, in place (the tests
// hold every kernel table to the scalar definition with it); t is Adam's
// step count before the step, returned after it.
template <class T>
int64_t optimizer_update(const TrainOptions& options, py::array_t<T, py::array::c_style> P, const carray<T>& G,
                         py::array_t<T, py::array::c_style> s1, py::array_t<T, py::array::c_style> s2, int64_t t) {
    const OptimizerConfig<T> opt = options.config<T>();
    const size_t n = P.size();
    if (size_t(G.size()) != n) throw std::invalid_argument("grads must have the size of params");
    const int buffers = kOptimizers[options.optimizer].state_buffers;
    if ((buffers >= 1 && size_t(s1.size()) != n) || (buffers >= 2 && size_t(s2.size()) != n))
        throw std::invalid_argument("state1/state2 must have the size of params");
    T* p = P.mutable_data();
    T* a = buffers >= 1 ? s1.mutable_data() : nullptr;
    T* b = buffers >= 2 ? s2.mutable_data() : nullptr;
    ReleaseGil g;
    optimizer_step<T>(p, G.data(), n, opt, a, b, &t);
    return t;
}

template <class T>
void bind_network_dtype(py::module_& m, const char* name, const char* csr_name) {
    using N = NetworkPy<T>;
    using X = CsrPy<T>;
    py::class_<X>(m, csr_name, "A sparse X's CSR arrays (int64 indptr and indices, values of the network's dtype), "
                               "checked once, for a Network's calls on a sparse X.")
        .def(py::init<carray<int64_t>, carray<int64_t>, carray<T>, size_t>(), py::arg("indptr"), py::arg("indices"),
             py::arg("data"), py::arg("n_cols"))
        .def_property_readonly("shape", [](const X& x) { return py::make_tuple(x.n_rows, x.n_cols); });
    py::class_<N>(m, name)
        .def(py::init<const std::vector<size_t>&, const std::vector<int>&, const std::vector<double>&, int, bool>(),
             py::arg("sizes"), py::arg("activations"), py::arg("params"), py::arg("loss"), py::arg("fused") = true)
        .def_property_readonly("num_params",
                               [name](py::handle n) { return constructed_self<N>(n, name).net.num_params(); })
        .def("layout", self_checked(&N::layout, name))
        .def("forward", self_checked(&N::forward, name), py::arg("params"), py::arg("X"))
        .def("predict", self_checked(&N::predict, name), py::arg("params"), py::arg("X"),
             py::arg("check_output") = true)
        .def("predict", self_checked(&N::predict_csr, name), py::arg("params"), py::arg("X"),
             py::arg("check_output") = true)
        .def("predict_as_is", self_checked(&N::predict_as_is, name), py::arg("params"), py::arg("X"),
             py::arg("max_rows"))
        .def("cost", self_checked(&N::cost, name), py::arg("params"), py::arg("X"), py::arg("Y"),
             py::arg("w") = py::none())
        .def("cost", self_checked(&N::cost_csr, name), py::arg("params"), py::arg("X"), py::arg("Y"),
             py::arg("w") = py::none())
        .def("loss_and_gradient", self_checked(&N::template loss_and_gradient<carray<T>>, name), py::arg("params"),
             py::arg("X"), py::arg("Y"), py::arg("w"), py::arg("rows"), py::arg("l2"), py::arg("grad").noconvert())
        .def("loss_and_gradient", self_checked(&N::template loss_and_gradient<X>, name), py::arg("params"),
             py::arg("X"), py::arg("Y"), py::arg("w"), py::arg("rows"), py::arg("l2"), py::arg("grad").noconvert())
        .def("train_epoch", self_checked(&N::template train_epoch<carray<T>>, name), py::arg("params").noconvert(),
             py::arg("X"),
             py::arg("Y"), py::arg("w"), py::arg("order"), py::arg("options"),
             py::arg("state1").noconvert() = py::none(), py::arg("state2").noconvert() = py::none(),
             py::arg("t").noconvert() = py::none(), py::arg("cost_sum") = 0.0, py::arg("penalty_sum") = 0.0)
        .def("train_epoch", self_checked(&N::template train_epoch<X>, name), py::arg("params").noconvert(),
             py::arg("X"),
             py::arg("Y"), py::arg("w"), py::arg("order"), py::arg("options"),
             py::arg("state1").noconvert() = py::none(), py::arg("state2").noconvert() = py::none(),
             py::arg("t").noconvert() = py::none(), py::arg("cost_sum") = 0.0, py::arg("penalty_sum") = 0.0)
        .def("release_workspace", self_checked(&N::release_workspace, name), py::arg("min_bytes") = 0,
             "Free a workspace sized for more rows than a predict chunk, holding at least min_bytes; returns the "
             "bytes freed.")
        .def("gradient_sum", self_checked(&N::template gradient_sum<carray<T>>, name), py::arg("params"),
             py::arg("X"), py::arg("Y"), py::arg("w"), py::arg("rows"), py::arg("grad").noconvert())
        .def("gradient_sum", self_checked(&N::template gradient_sum<X>, name), py::arg("params"), py::arg("X"),
             py::arg("Y"), py::arg("w"), py::arg("rows"), py::arg("grad").noconvert())
        .def("apply_gradient_sum", self_checked(&N::apply_gradient_sum, name), py::arg("params").noconvert(),
             py::arg("grad").noconvert(), py::arg("denom"), py::arg("options"),
             py::arg("state1").noconvert() = py::none(), py::arg("state2").noconvert() = py::none(),
             py::arg("t").noconvert() = py::none());
}

}  // namespace

void bind_network(py::module_& m) {
    py::class_<TrainOptions>(m, "TrainOptions")
        .def(py::init([](const py::object& optimizer, double learning_rate, double momentum, double beta1,
                         double beta2, double epsilon, double l2, double weight_decay, size_t batch_size) {
                 TrainOptions o;
                 o.optimizer = optimizer_id(optimizer);
                 o.learning_rate = learning_rate;
                 o.momentum = momentum;
                 o.beta1 = beta1;
                 o.beta2 = beta2;
                 o.epsilon = epsilon;
                 o.l2 = l2;
                 o.weight_decay = weight_decay;
                 o.batch_size = checked_batch_size(batch_size);
                 return o;
             }),
             py::kw_only(), py::arg("optimizer") = py::str("sgd"), py::arg("learning_rate") = 0.01,
             py::arg("momentum") = 0.9, py::arg("beta1") = 0.9, py::arg("beta2") = 0.999,
             py::arg("epsilon") = 1e-8, py::arg("l2") = 0.0, py::arg("weight_decay") = 0.0,
             py::arg("batch_size") = size_t(1))
        .def_property(  // set as at construction: a name or a valid id
            "optimizer", [](const TrainOptions& o) { return o.optimizer; },
            [](TrainOptions& o, const py::object& v) { o.optimizer = optimizer_id(v); })
        .def_readwrite("learning_rate", &TrainOptions::learning_rate)
        .def_readwrite("momentum", &TrainOptions::momentum)
        .def_readwrite("beta1", &TrainOptions::beta1)
        .def_readwrite("beta2", &TrainOptions::beta2)
        .def_readwrite("epsilon", &TrainOptions::epsilon)
        .def_readwrite("l2", &TrainOptions::l2)
        .def_readwrite("weight_decay", &TrainOptions::weight_decay)
        .def_property(  // checked as at construction
            "batch_size", [](const TrainOptions& o) { return o.batch_size; },
            [](TrainOptions& o, size_t v) { o.batch_size = checked_batch_size(v); })
        .def("__repr__", [](const TrainOptions& o) {
            // optimizer is checked when set, but not in an object made by __new__ alone
            const bool known = o.optimizer >= 0 && o.optimizer < kNumOptimizers;
            return "TrainOptions(optimizer='" + std::string(known ? kOptimizers[o.optimizer].name : "?") +
                   "', learning_rate=" + std::to_string(o.learning_rate) +
                   ", batch_size=" + std::to_string(o.batch_size) + ", ...)";
        });
    m.def("optimizer_update", &optimizer_update<float>, py::arg("options"), py::arg("params").noconvert(),
          py::arg("grads"), py::arg("state1").noconvert(), py::arg("state2").noconvert(), py::arg("t"),
          "In place: one step of options' optimizer; returns Adam's new step count.");
    m.def("optimizer_update", &optimizer_update<double>, py::arg("options"), py::arg("params").noconvert(),
          py::arg("grads"), py::arg("state1").noconvert(), py::arg("state2").noconvert(), py::arg("t"),
          "In place: one step of options' optimizer; returns Adam's new step count.");
    bind_network_dtype<float>(m, "Network32", "Csr32");
    bind_network_dtype<double>(m, "Network64", "Csr64");
    py::list optimizers;
    for (const OptimizerInfo& info : kOptimizers)
        optimizers.append(py::make_tuple(info.name, int(info.id), info.state_buffers));
    m.attr("OPTIMIZERS") = optimizers;  // (name, id, state buffers)
    // Windows of plain-SGD batches (network.hpp): at most this many rows.
    m.attr("STOCHASTIC_WINDOW") = kStochasticWindow;
    // Batches per window of plain-SGD batches of batch_size rows on a first
    // W of first_w_bytes, 1 where they do not go in windows: the training
    // driver cuts the epochs into chunks of whole windows, and the memory
    // checks count a window's rows.
    // Rows of the chunk of predict / cost that starts at row i0 of n
    // (chunk_at): Python makes a sparse X dense in the same chunks, so each
    // row's output has the bits of X made dense.
    m.def("chunk_rows", [](int64_t i0, int64_t n) {
        if (i0 < 0 || n <= i0) throw std::invalid_argument("chunk_rows: need 0 <= i0 < n");
        return chunk_at(size_t(i0), size_t(n));
    }, py::arg("i0"), py::arg("n"));
    m.def("stochastic_window_batches", [](int64_t batch_size, int64_t first_w_bytes) {
        if (batch_size < 1) throw std::invalid_argument("batch_size must be positive");
        if (first_w_bytes < 0) throw std::invalid_argument("first_w_bytes must be >= 0");
        const size_t b = size_t(batch_size);
        return takes_window(b, size_t(first_w_bytes)) ? window_batches(b) : size_t(1);
    }, py::arg("batch_size"), py::arg("first_w_bytes"));
}

}  // namespace dnnfast::bindings
