#include "bindings/bindings.hpp"
#include "threads.hpp"

#include <climits>

namespace dnnfast::bindings {

namespace {

// call_with_local_num_threads(n, fn, *args) as a plain CPython function:
// the estimators run every small step and one-row predict through it.
// Through pybind11's dispatcher (its *args tuple, the call back) each call
// cost several times what it costs this way (BENCHMARKS.md, "Measurements
// behind the code": call_with_local_num_threads).
// The count is set and restored here, around the call, so that no Python
// code runs between setting it and the guard that puts it back: a Ctrl-C
// (KeyboardInterrupt) landing in a Python-level context manager's
// __enter__ or __exit__ could leave the thread on that count for good.
PyObject* call_with_local_num_threads(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs < 2) {
        PyErr_SetString(PyExc_TypeError, "call_with_local_num_threads(n, fn, *args) takes n and fn");
        return nullptr;
    }
    const long n = PyLong_AsLong(args[0]);
    if (n == -1 && PyErr_Occurred()) return nullptr;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n must be >= 0 (0 removes the calling thread's own count)");
        return nullptr;
    }
    if (n > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "n is too large");
        return nullptr;
    }
    struct Restore {
        int prev;
        ~Restore() { dnnfast::set_local_num_threads(prev); }
    } restore{dnnfast::set_local_num_threads(int(n))};
    return PyObject_Vectorcall(args[1], args + 2, size_t(nargs - 2), nullptr);
}
PyMethodDef call_with_local_num_threads_def = {
    "call_with_local_num_threads",
    reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(call_with_local_num_threads)), METH_FASTCALL,
    "call_with_local_num_threads(n, fn, *args)\n\nfn(*args) with the calling thread's own thread count n, the "
    "previous one restored however fn ends."};

}  // namespace

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
    {
        PyObject* fn = PyCFunction_NewEx(&call_with_local_num_threads_def, nullptr, m.attr("__name__").ptr());
        if (fn == nullptr) throw py::error_already_set();
        m.attr("call_with_local_num_threads") = py::reinterpret_steal<py::object>(fn);
    }
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

// The atexit hook (registered below; atexit runs before Python finalizes):
// from here on a thread coming back from the core waits instead of retaking
// the GIL (ReleaseGil). Threads already past that check are let take the
// GIL first, the GIL released for up to 2 s: waiting for it when
// finalization began, they would be ended mid-C++ (ReleaseGil). The thread
// running the hook goes on to finalize and may still call the core.
//
// Only when no atexit hook registered before dnnfast's import is still to
// run (atexit runs the last registered first): such a hook (an executor's
// shutdown, a save) may wait for a thread inside the core, which would then
// sleep for good and the exit hang. Those processes keep CPython's own
// check alone (ReleaseGil's finalizing()).
size_t g_hooks_before = 1;  // atexit hooks registered before this module's (set at import)

void at_exit() {
    if (g_hooks_before != 0) return;
    g_exit_thread.store(PyThread_get_thread_ident());
    g_exiting.store(true);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (g_restoring.load() > 0 && std::chrono::steady_clock::now() < deadline) {
        Py_BEGIN_ALLOW_THREADS
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        Py_END_ALLOW_THREADS
    }
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
    auto atexit = b::py::module_::import("atexit");
    if (b::py::hasattr(atexit, "_ncallbacks")) b::g_hooks_before = atexit.attr("_ncallbacks")().cast<size_t>();
    atexit.attr("register")(b::py::cpp_function(&b::at_exit));
}
