// The model lock's state machine (dnnfast/_locking.py holds the policy and
// the decorators; this file holds what must be atomic).
//
// Why C++: a KeyboardInterrupt (any exception raised by a Python signal
// handler) can arrive between any two bytecodes of Python code, and inside
// the pure-Python parts of threading.Condition.wait, which re-takes its lock
// in a Python-level `finally`. Each function below runs with the GIL held and
// calls no Python code, so a signal handler cannot run in the middle of it:
// the lock's state changes all at once or not at all. The only place a
// handler can run is PyErr_CheckSignals() inside a wait, and every wait comes
// before the state change it waits for (or undoes what came before it), so an
// exception from there leaves the state as it was. The decorators enter
// the lock with `with lock:` / `with lock.fits:` / `with lock.copies:`, whose
// __enter__/__exit__ are these functions: CPython does not run signal
// handlers between a C-level __enter__ returning and its with-block starting,
// nor before a C-level __exit__ runs, so "acquired" and "will be released"
// are established together (details and the CPython versions checked:
// dnnfast/_locking.py).
//
// The GIL is the mutex of every lock's state. Waiting threads release it and
// sleep on one process-wide condition variable, with a generation count so a
// wake-up cannot be lost, waking at least every 50 ms to let the main thread
// run its signal handlers (Ctrl-C interrupts a wait for a fit).
//
// fork: pthread_atfork's child handler (no Python code, one thread) frees
// every lock of the threads that do not exist in the child, and replaces the
// process-wide mutex and condition variable, which a thread that is gone may
// have held. The Python-level before-fork hook (fork_prepare) first waits
// until no other thread is inside a model's call (fits park at a step
// boundary, reads finish), so the child never sees a model in the middle of
// a step, nor a core network's workspace mutex held by a thread that is gone.
#include "bindings/bindings.hpp"

#include <pythread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define DNNFAST_LOCK_FORK_GUARD 1
#endif

namespace dnnfast::bindings {
namespace {

using Ident = unsigned long;

// Replaced (the old ones leaked) in a forked child: a thread that no longer
// exists may have held the mutex at the fork.
std::mutex* g_wait_mutex = new std::mutex;
std::condition_variable* g_wait_cv = new std::condition_variable;
std::atomic<uint64_t> g_generation{0};

Ident g_forker = 0;  // the thread inside os.fork()'s before hook, 0 = none (GIL-protected)

Ident me() { return PyThread_get_thread_ident(); }

// Model locks (reads and fits, any model) the calling thread holds. A thread
// that holds none is the only kind a pending fork keeps waiting (below): one
// that holds some finishes its calls, so the fork cannot wait for it for ever.
thread_local int t_held = 0;

// True while another thread prepares a fork and the calling thread holds no
// model lock: it may not start a call into the core now.
bool fork_gated(Ident t) { return g_forker != 0 && g_forker != t && t_held == 0; }

void notify_all() {  // GIL held
    {
        std::lock_guard<std::mutex> lk(*g_wait_mutex);
        g_generation.fetch_add(1, std::memory_order_relaxed);
    }
    g_wait_cv->notify_all();
}

// Sleeps until another thread calls notify_all() (or 50 ms pass), then runs
// pending signal handlers (unless `signals` is false: they stay pending for
// the next bytecode). GIL held on entry and exit; throws what a handler raised.
void wait_once(bool signals = true) {
    const uint64_t gen = g_generation.load(std::memory_order_relaxed);
    {
        ReleaseGil nogil;
        std::unique_lock<std::mutex> lk(*g_wait_mutex);
        g_wait_cv->wait_for(lk, std::chrono::milliseconds(50),
                            [&] { return g_generation.load(std::memory_order_relaxed) != gen; });
    }
    if (signals && PyErr_CheckSignals() != 0) throw py::error_already_set();
}

class ModelLock;

// `with lock.copies:` / `with lock.fits:` -- one guard object per lock and
// kind, shared by every thread (the state is per thread). `with lock:` reads.
struct Guard {
    enum Kind { Copy, Write } kind;
    ModelLock* lock;
};

std::unordered_set<ModelLock*>& registry() {  // every live lock (GIL-protected)
    static auto* r = new std::unordered_set<ModelLock*>;
    return *r;
}

// The lock each thread waits to read (GIL-protected): for finding a wait
// that would never end (ModelLock::check_no_cycle).
std::unordered_map<Ident, const ModelLock*>& waiting_to_read() {
    static auto* w = new std::unordered_map<Ident, const ModelLock*>;
    return *w;
}

class ModelLock {
public:
    explicit ModelLock(std::string what) : what_(std::move(what)) { registry().insert(this); }
    ~ModelLock() { registry().erase(this); }
    ModelLock(const ModelLock&) = delete;
    ModelLock& operator=(const ModelLock&) = delete;

    const std::string& what() const { return what_; }

    // Reads: side by side; a read waits while another thread fits (or
    // claims the model for a fit: writers have priority). Nested reads, and
    // reads inside the thread's own fit, pass.
    void acquire_read() { acquire_read_as(false); }

    // A copy (pickle, deepcopy, fork): like a read, but it may also run while
    // the fitting thread is parked at a step boundary.
    void acquire_copy() { acquire_read_as(true); }

    void release_read() {
        const Ident t = me();
        auto it = readers_.find(t);
        if (it == readers_.end()) throw std::runtime_error("model lock: release of a read this thread does not hold");
        --t_held;
        if (--it->second == 0) {
            readers_.erase(it);
            if (readers_.empty() && writer_ != 0) notify_all();  // a fit waits for the last read
        }
    }

    void acquire_write() {
        const Ident t = me();
        if (readers_.count(t))
            throw std::runtime_error(what_ + " cannot be fitted from inside one of its own predictions");
        if (writer_ == t) {
            ++writer_depth_;
            ++t_held;
            return;
        }
        if (writer_ != 0)
            // (Assigning parameters, net.weights = ..., takes the model as a fit does.)
            throw std::runtime_error(what_ + " is already being fitted in another thread (or its parameters "
                                             "assigned there); fit a copy instead (copy.deepcopy, or "
                                             "sklearn.base.clone for an estimator), or wait for that call to end");
        writer_ = t;  // claimed: from here on new reads wait
        writer_depth_ = 1;
        try {
            // The reads in progress finish first, and no fit starts changing a
            // model while a fork is being prepared in another thread.
            while (!readers_.empty() || fork_gated(t)) wait_once();
        } catch (...) {  // interrupted: give the model back, as if never claimed
            writer_ = 0;
            writer_depth_ = 0;
            notify_all();
            throw;
        }
        active_ = true;
        ++t_held;
    }

    void release_write() {
        if (writer_ != me() || writer_depth_ <= 0)
            throw std::runtime_error("model lock: release of a fit this thread does not hold");
        --t_held;
        if (--writer_depth_ == 0) {
            writer_ = 0;
            active_ = false;
            notify_all();
        }
    }

    // Called by the fitting thread where the model is a whole training state
    // (between epochs). If a copy or a fork waits, the fit parks here until
    // they are done; otherwise it costs one check.
    void step_boundary() {
        const Ident t = me();
        if (writer_ != t) return;  // not inside a fit of this model
        // A fit that holds other models' locks too is not parked for a fork:
        // the fork waits for those, and would wait for ever.
        const bool fork_waits = g_forker != 0 && g_forker != t && t_held == writer_depth_;
        if (copies_waiting_ == 0 && !fork_waits) return;
        active_ = false;
        notify_all();
        try {
            while (copies_waiting_ != 0 || has_other_readers(t) || (fork_waits && g_forker != 0)) wait_once();
        } catch (...) {  // interrupted while parked: the fit goes on (and raises) as it was
            active_ = true;
            throw;
        }
        active_ = true;
    }

    bool fitting() const { return writer_ != 0; }
    bool reading() const { return !readers_.empty(); }
    bool changing_model() const { return active_; }
    bool read_by_another_thread(Ident t) const { return has_other_readers(t); }
    Ident writer() const { return writer_; }

    // In a forked child only the forking thread exists: the states of the
    // others go. Runs without the GIL in pthread_atfork's child handler,
    // where no other thread can run.
    void after_fork_in_child(Ident t) {
        for (auto it = readers_.begin(); it != readers_.end();) it = (it->first == t) ? std::next(it) : readers_.erase(it);
        if (writer_ != t) {
            writer_ = 0;
            writer_depth_ = 0;
            active_ = false;
        }
        copies_waiting_ = 0;
    }

private:
    bool has_other_readers(Ident t) const { return readers_.size() > (readers_.count(t) ? 1u : 0u); }

    void acquire_read_as(bool copy) {
        const Ident t = me();
        auto it = readers_.find(t);
        if (it != readers_.end()) {  // nested
            ++it->second;
            ++t_held;
            return;
        }
        // While a fork is prepared, a thread that holds other models' locks
        // (a fit's callback reading another model) is one the fork waits
        // for: it may read a model whose fit is parked (a whole training
        // state, which the fit does not change before the read ends), or the
        // fork, that fit and this thread wait for each other for ever.
        auto blocked = [&] {
            const bool fork_waits_for_me = g_forker != 0 && t_held > 0;
            return (writer_ != 0 && writer_ != t && (!copy || active_) && !(fork_waits_for_me && !active_)) ||
                   fork_gated(t);
        };
        if (blocked()) {
            if (copy) ++copies_waiting_;
            waiting_to_read()[t] = this;
            try {
                while (blocked()) {
                    check_no_cycle(t);
                    wait_once();
                }
            } catch (...) {
                waiting_to_read().erase(t);
                if (copy && --copies_waiting_ == 0) notify_all();
                throw;
            }
            waiting_to_read().erase(t);
            if (copy) --copies_waiting_;  // now a reader: a parked fit waits for it to finish
        }
        readers_[t] = 1;
        ++t_held;
    }

    // Thread t waits to read this model, fitted by another thread: if that
    // thread waits (from a callback) to read a model whose fit is t's, or
    // waits so along a longer chain, no thread can go on. Two threads whose
    // fits' callbacks predicted or copied each other's model waited for ever
    // (and Ctrl-C reaches neither when both are other than the main thread).
    // Checked on every wake-up, so the thread that closes the cycle raises,
    // its fit ends with the error and the other's goes on.
    void check_no_cycle(Ident t) const {
        const ModelLock* l = this;
        for (size_t hops = 0; hops <= waiting_to_read().size(); ++hops) {
            const Ident w = l->writer_;
            if (w == 0) return;
            if (w == t)
                throw std::runtime_error(
                    what_ + " is being fitted in another thread, which waits to read a model this thread is "
                    "fitting (from a callback): the two fits would wait for each other for ever. Read a copy "
                    "taken before the fits (copy.deepcopy), or fit the models one after the other");
            auto it = waiting_to_read().find(w);
            if (it == waiting_to_read().end()) return;
            l = it->second;
        }
    }

public:
    Guard copies_guard{Guard::Copy, this}, fits_guard{Guard::Write, this};

private:
    std::string what_;
    std::unordered_map<Ident, int> readers_;  // thread -> depth of its nested reads
    Ident writer_ = 0;                        // the fitting thread, 0 = none
    int writer_depth_ = 0;
    bool active_ = false;                     // the fit changes the model now (not parked, not claiming)
    int copies_waiting_ = 0;
};

// os.fork()'s before hook: wait until no other thread is inside a model's
// call -- fits park at their next step boundary (or end), reads finish -- and
// keep new ones from starting until the fork is done (fork_done in the
// parent; the child starts afresh). Besides whole models, this keeps the
// child from inheriting a core network's workspace mutex held by a thread
// that does not exist there (a later fit in the child would wait for it for
// ever).
//
// The waits run no signal handler: CPython ignores an exception from a
// before-fork hook and forks anyway, so a Ctrl-C raised here made the fork
// go ahead in the middle of another thread's step (its child's next fit
// waited for ever on a workspace mutex held by a thread it does not have).
// A Ctrl-C stays pending instead, and the parent takes it as os.fork()
// returns (the child starts with no signal pending). The wait is bounded by
// the other threads' steps and reads.
//
// The hooks registered before dnnfast's run after it (logging's, which
// dnnfast/_locking.py registers first), and CPython runs a pending handler
// in the first Python one: its KeyboardInterrupt is dropped there, and
// logging's lock was not taken. So a Ctrl-C pending at the end of the wait
// is taken off here (PyOS_InterruptOccurred: SIGINT, main thread only, the
// one that runs handlers) and set again by fork_done, in the parent.
bool g_sigint_held = false;  // GIL-protected, as g_forker

void fork_prepare() {
    const Ident t = me();
    while (g_forker != 0 && g_forker != t) wait_once(false);  // another thread forks: one at a time
    g_forker = t;
    notify_all();  // wakes fits waiting to park
    for (;;) {
        bool busy = false;
        for (ModelLock* l : registry())
            if ((l->changing_model() && l->writer() != t) || l->read_by_another_thread(t)) busy = true;
        if (!busy) break;
        wait_once(false);
    }
    if (PyOS_InterruptOccurred()) g_sigint_held = true;
}

void fork_done() {  // after_in_parent (also when fork() failed)
    if (g_forker == me()) {
        g_forker = 0;
        notify_all();
    }
    if (g_sigint_held) {
        g_sigint_held = false;
        PyErr_SetInterrupt();  // SIGINT's handler runs as os.fork() returns
    }
}

#ifdef DNNFAST_LOCK_FORK_GUARD
void locks_after_fork_in_child() {
    g_wait_mutex = new std::mutex;  // the old ones may be held by threads that are gone: leaked
    g_wait_cv = new std::condition_variable;
    g_forker = 0;
    g_sigint_held = false;  // the parent's Ctrl-C
    // The threads that waited to read are gone; a new thread may get one's
    // ident (glibc reuses stacks), and a stale entry made a cycle out of nothing.
    waiting_to_read().clear();
    const Ident t = PyThread_get_thread_ident();  // pthread_self(): the forking thread's, as in the parent
    for (ModelLock* l : registry()) l->after_fork_in_child(t);
}

const int lock_fork_guard = pthread_atfork(nullptr, nullptr, locks_after_fork_in_child);
#endif


// `with lock:` (a read: the hot path, a one-row predict) as plain CPython
// methods, without pybind11's dispatcher and its cost on every call
// (BENCHMARKS.md, "Measurements behind the code": call_lock). The same C++
// calls, with the exceptions they raise translated as pybind11 would: an
// error set by a signal handler as it is, std::bad_alloc as MemoryError,
// any other as RuntimeError (all that acquire_read / release_read throw).
template <void (ModelLock::*Fn)()>
bool call_lock(PyObject* self) noexcept {  // false: a Python exception is set
    try {
        // The descriptor has checked that self is a ModelLock, so its C++
        // object is read straight from the instance, without a second type
        // lookup. ModelLock.__new__ without __init__ has none (its
        // unordered_map unconstructed: a crash in find).
        auto vh = reinterpret_cast<py::detail::instance*>(self)->get_value_and_holder();
        if (!constructed(vh)) {
            PyErr_SetString(PyExc_TypeError, "ModelLock: __init__ was not called");
            return false;
        }
        (vh.value_ptr<ModelLock>()->*Fn)();
        return true;
    } catch (py::error_already_set& e) {
        e.restore();
    } catch (const std::bad_alloc&) {
        PyErr_NoMemory();
    } catch (const std::exception& e) {
        PyErr_SetString(PyExc_RuntimeError, e.what());
    }
    return false;
}
PyObject* lock_enter(PyObject* self, PyObject*) {
    if (!call_lock<&ModelLock::acquire_read>(self)) return nullptr;
    Py_RETURN_NONE;
}
PyObject* lock_exit(PyObject* self, PyObject* const*, Py_ssize_t) {
    if (!call_lock<&ModelLock::release_read>(self)) return nullptr;
    Py_RETURN_FALSE;  // an exception in the block goes on
}
PyMethodDef lock_enter_def = {"__enter__", lock_enter, METH_NOARGS, "A read of the model (`with lock:`)."};
PyMethodDef lock_exit_def = {"__exit__", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(lock_exit)),
                             METH_FASTCALL, "The end of the read."};

}  // namespace

void bind_lock(py::module_& m) {
    py::class_<ModelLock> model_lock(m, "ModelLock", "Readers-writer lock of one model (see dnnfast/_locking.py).");
    model_lock.def(py::init<std::string>(), py::arg("what") = "the model")
        .def("acquire_read", self_checked(&ModelLock::acquire_read, "ModelLock"))
        .def("release_read", self_checked(&ModelLock::release_read, "ModelLock"))
        .def("acquire_copy", self_checked(&ModelLock::acquire_copy, "ModelLock"))
        .def("acquire_write",
             [](py::handle l, py::object) { constructed_self<ModelLock>(l, "ModelLock").acquire_write(); },
             py::arg("what") = py::none())
        .def("release_write", self_checked(&ModelLock::release_write, "ModelLock"))
        .def("step_boundary", self_checked(&ModelLock::step_boundary, "ModelLock"),
             "Called by a fit where the model is whole: lets a waiting copy or fork in.")
        .def_property_readonly("fitting", self_checked(&ModelLock::fitting, "ModelLock"),
                               "True while a fit holds (or claims) the model.")
        .def_property_readonly("reading", self_checked(&ModelLock::reading, "ModelLock"),
                               "True while any read holds the model.")
        .def_property_readonly("what", self_checked(&ModelLock::what, "ModelLock"))
        .def_property_readonly("copies",
                               [](py::handle l) { return &constructed_self<ModelLock>(l, "ModelLock").copies_guard; },
                               py::return_value_policy::reference_internal,
                               "`with lock.copies:` a read that may run while the fit is parked at a step boundary.")
        .def_property_readonly("fits",
                               [](py::handle l) { return &constructed_self<ModelLock>(l, "ModelLock").fits_guard; },
                               py::return_value_policy::reference_internal,
                               "`with lock.fits:` a fit (one at a time, no reads meanwhile).")
        .def("__reduce__", [](py::handle l) {  // a pickled or copied model starts with a free lock
            return py::make_tuple(py::module_::import("dnnfast._core").attr("ModelLock"),
                                  py::make_tuple(constructed_self<ModelLock>(l, "ModelLock").what()));
        });
    // `with lock:` is a read, with no guard object to look up (lock_enter_def).
    for (PyMethodDef* def : {&lock_enter_def, &lock_exit_def}) {
        PyObject* descr = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(model_lock.ptr()), def);
        if (descr == nullptr) throw py::error_already_set();
        model_lock.attr(def->ml_name) = py::reinterpret_steal<py::object>(descr);
    }
    py::class_<Guard>(m, "_LockGuard")
        .def("__enter__", [](py::handle self) {
            Guard& g = constructed_self<Guard>(self, "_LockGuard");
            if (g.kind == Guard::Copy) g.lock->acquire_copy();
            else g.lock->acquire_write();
        })
        .def("__exit__", [](py::handle self, py::args) {
            Guard& g = constructed_self<Guard>(self, "_LockGuard");
            if (g.kind == Guard::Write) g.lock->release_write();
            else g.lock->release_read();
            return false;
        });
    m.def("_locks_fork_prepare", &fork_prepare);
    m.def("_locks_fork_done", &fork_done);
}

}  // namespace dnnfast::bindings
