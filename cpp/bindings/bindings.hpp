// The binding layer: the only code that includes pybind11. Each file binds one
// concept; module.cpp assembles them into dnnfast._core.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <chrono>
#include <optional>

#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

// An argument declared carray<T> (below) accepts exactly a C-contiguous NumPy
// array of T and passes it on as it is; anything else is pybind11's
// TypeError. dnnfast's Python validates and converts first, so the core only
// ever gets such arrays. pybind11's own caster hands every argument to
// PyArray_FromAny, even one already right, a cost on every call of a
// one-row predict (BENCHMARKS.md, "Measurements behind the code": carray),
// and, unless it is marked noconvert, copies a strided array or converts a
// safely castable dtype in silence.
namespace pybind11::detail {
template <typename T>
struct pyobject_caster<array_t<T, array::c_style>> {
    using type = array_t<T, array::c_style>;
    bool load(handle src, bool /*convert*/) {
        if (!type::check_(src)) return false;  // an ndarray of T's dtype, C-contiguous
        value = reinterpret_borrow<type>(src);
        return true;
    }
    static handle cast(const handle& src, return_value_policy /*policy*/, handle /*parent*/) { return src.inc_ref(); }
    PYBIND11_TYPE_CASTER(type, handle_type_name<type>::name);
};
}  // namespace pybind11::detail

namespace dnnfast::bindings {

namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style>;  // exactly T, C-contiguous: see the caster above

// Set by at_exit (module.cpp: an atexit hook, which runs before Python
// finalizes) on the thread that then finalizes; g_restoring counts the
// threads between ReleaseGil's check and their retaking of the GIL.
inline std::atomic<bool> g_exiting{false};
inline std::atomic<unsigned long> g_exit_thread{0};
inline std::atomic<int> g_restoring{0};

// py::gil_scoped_release, but safe for a daemon thread at interpreter exit.
// When such a thread comes back from the core after Python has begun to
// finalize, PyEval_RestoreThread (Python 3.13 and older) ends it with
// pthread_exit, whose forced unwind runs into this noexcept destructor and
// calls std::terminate: a fit in a daemon thread aborted the process at exit
// (SIGABRT, "terminate called without an active exception"). The thread
// waits here instead, holding nothing of Python's, and the process exits
// around it, as Python 3.14 does itself. Checking for finalization alone
// left a thread that had passed the check and waited for the GIL when
// finalization began to be ended so (daemon threads waiting for another's
// fit retake the GIL every 50 ms: 2 exits in 8 aborted); the atexit hook
// now says the exit is coming first, and lets every thread already past
// the check take the GIL before it returns (at_exit, module.cpp), where no
// hook registered before dnnfast's import is still to run.
class ReleaseGil {
  public:
    ReleaseGil() : state_(PyEval_SaveThread()) {}
    ~ReleaseGil() {
        g_restoring.fetch_add(1);  // before the check (sequentially consistent: at_exit reads them the other way)
        if ((g_exiting.load() || finalizing()) && PyThread_get_thread_ident() != g_exit_thread.load()) {
            g_restoring.fetch_sub(1);
            for (;;) std::this_thread::sleep_for(std::chrono::hours(24));
        }
        PyEval_RestoreThread(state_);
        g_restoring.fetch_sub(1);
    }
    ReleaseGil(const ReleaseGil&) = delete;
    ReleaseGil& operator=(const ReleaseGil&) = delete;

  private:
    static bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
        return Py_IsFinalizing() != 0;
#else
        return _Py_IsFinalizing() != 0;
#endif
    }
    PyThreadState* state_;
};

// Checks done again here (Python validates first) so that no pointer reaches a
// kernel with a shape it does not expect, whatever the caller.
template <class T>
inline void require_2d(const carray<T>& a, const char* name) {
    if (a.ndim() != 2) throw std::invalid_argument(std::string(name) + " must be 2-D");
}

// Whether a C++ object stands behind an instance: made by __init__ (the
// holder), or handed out by reference (not owned, no holder). Storage that
// a caster allocated on demand for an instance made by __new__ alone is
// owned and has no holder. (ModelLock's `with` methods, plain CPython
// methods in bind_lock.cpp, ask it too.)
inline bool constructed(const py::detail::value_and_holder& vh) {
    return vh && vh.value_ptr() && (vh.holder_constructed() || !vh.inst->owned);
}
// `self` of a bound member function, checked. An object made by
// Class.__new__ without __init__ has no C++ object, and pybind11 would hand
// a member-function binding freshly allocated, unconstructed storage as
// `this` (a crash, or a hang in a lock's wait); such a call raises TypeError
// instead.
template <class C>
C& constructed_self(py::handle self, const char* cls) {
    static const py::detail::type_info* const info = py::detail::get_type_info(typeid(C));
    if (!PyObject_TypeCheck(self.ptr(), info->type))
        throw py::type_error(std::string(cls) + " method called on a " + Py_TYPE(self.ptr())->tp_name);
    auto vh = reinterpret_cast<py::detail::instance*>(self.ptr())->get_value_and_holder(info, false);
    if (!constructed(vh)) throw py::type_error(std::string(cls) + ": __init__ was not called");
    return *vh.template value_ptr<C>();
}
template <class C, class R, class... A>
auto self_checked(R (C::*f)(A...), const char* cls) {
    return [f, cls](py::handle self, A... a) -> R {
        return (constructed_self<C>(self, cls).*f)(std::forward<A>(a)...);
    };
}
template <class C, class R, class... A>
auto self_checked(R (C::*f)(A...) const, const char* cls) {
    return [f, cls](py::handle self, A... a) -> R {
        return (constructed_self<C>(self, cls).*f)(std::forward<A>(a)...);
    };
}

void bind_threads(py::module_& m);
void bind_gemm(py::module_& m);
void bind_ops(py::module_& m);
void bind_network(py::module_& m);
void bind_lock(py::module_& m);

}  // namespace dnnfast::bindings
