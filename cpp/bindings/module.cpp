#include "bindings/bindings.hpp"
#include "threads.hpp"

namespace dnnfast::bindings {

void bind_threads(py::module_& m) {
    m.def("get_num_threads", &dnnfast::get_num_threads,
          "Threads the kernels use now (set_num_threads value, else OpenMP's max).");
    m.def("set_num_threads", [](int n) {
        if (n < 0) throw std::invalid_argument("n must be >= 0 (0 follows OMP_NUM_THREADS)");
        dnnfast::set_num_threads(n);
    }, py::arg("n"));
    m.def("set_local_num_threads", [](int n) {
        if (n < 0) throw std::invalid_argument("n must be >= 0 (0 removes the calling thread's own count)");
        return dnnfast::set_local_num_threads(n);
    }, py::arg("n"), "Thread count for the calling thread only (0 removes it); returns the previous one.");
    m.def("call_with_local_num_threads", [](int n, py::function fn, py::args args) {
        if (n < 0) throw std::invalid_argument("n must be >= 0 (0 removes the calling thread's own count)");
        // Set and restored here, around the call, so that no Python code runs
        // between setting the count and the guard that puts it back: a
        // Ctrl-C (KeyboardInterrupt) landing in a Python-level context
        // manager's __enter__ or __exit__ could leave the thread on that
        // count for good.
        struct Restore {
            int prev;
            ~Restore() { dnnfast::set_local_num_threads(prev); }
        } restore{dnnfast::set_local_num_threads(n)};
        return fn(*args);
    }, py::arg("n"), py::arg("fn"),
       "fn(*args) with the calling thread's own thread count n, the previous one restored however fn ends.");
    m.def("late_team_count", &dnnfast::late_team_count,
          "Thread teams so far whose members joined late (their cores were busy).");
    m.def("teams_paused", &dnnfast::teams_paused,
          "True while kernels run on one thread because a team started late.");
    m.def("simulate_late_team", [](double delay_us) {
        dnnfast::note_team_start(int64_t(delay_us * 1000.0));
    }, py::arg("delay_us"), "For tests: record a team that started delay_us late, now.");
    m.def("has_openmp", []() {
#ifdef _OPENMP
        return true;
#else
        return false;
#endif
    });
}

}  // namespace dnnfast::bindings

PYBIND11_MODULE(_core, m) {
    namespace b = dnnfast::bindings;
    m.doc() = "dnnfast compiled core (private): kernels for MLP training.";
    m.attr("__version__") = DNNFAST_VERSION;
    b::bind_threads(m);
    b::bind_gemm(m);
    b::bind_ops(m);
    b::bind_network(m);
    b::bind_lock(m);
}
