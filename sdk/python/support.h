// Support for ferry._ferry (sdk/python/_ferry.cc): libferry errors as Python exceptions,
// argument conversions, GIL-free interruptible waits, and the buffer-protocol export shared by
// ferry.Object and ferry.WritableBuffer. Everything here runs with the GIL held unless it says
// otherwise.
#pragma once

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/dtype.h"
#include "core/names.h"
#include "ferry/client.h"
#include "ferry/object.h"
#include "sdk/python/dlpack.h"

namespace ferry::python {

namespace py = pybind11;

// ---- errors -------------------------------------------------------------------------------

// A libferry error on its way to Python; the translator registered in the module turns it
// into ferry.errors.<Code>Error.
struct StatusError : std::exception {
  explicit StatusError(absl::Status s) : status(std::move(s)) {}
  const char* what() const noexcept override { return "ferry status error"; }
  absl::Status status;
};

[[noreturn]] inline void Throw(absl::Status status) { throw StatusError(std::move(status)); }

inline void Check(const absl::Status& status) {
  if (!status.ok()) Throw(status);
}

template <typename T>
T Unwrap(absl::StatusOr<T> result) {
  if (!result.ok()) Throw(result.status());
  return std::move(*result);
}

// Sets the Python error for `status` (GIL held). Falls back to RuntimeError if the pure-Python
// half of the package cannot be imported.
inline void SetPythonError(const absl::Status& status) {
  const std::string code = absl::StatusCodeToString(status.code());
  const std::string message(status.message());
  try {
    py::object errors = py::module_::import("ferry.errors");
    py::object exc = errors.attr("_from_status")(code, message);
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  } catch (py::error_already_set& e) {
    PyErr_SetString(PyExc_RuntimeError, absl::StrCat(code, ": ", message).c_str());
  }
}

// ---- conversions -----------------------------------------------------------------------------

// None: wait forever. Negative: do not wait. NaN: INVALID_ARGUMENT.
inline absl::Duration DurationFrom(std::optional<double> seconds, const char* what) {
  if (!seconds.has_value()) return absl::InfiniteDuration();
  if (std::isnan(*seconds)) {
    Throw(absl::InvalidArgumentError(absl::StrCat(what, " is NaN")));
  }
  if (*seconds <= 0) return absl::ZeroDuration();
  if (std::isinf(*seconds)) return absl::InfiniteDuration();
  return absl::Seconds(*seconds);
}

inline DType ParseDType(const std::string& name) {
  std::optional<DType> dtype = DTypeFromName(name);
  if (!dtype.has_value()) {
    Throw(absl::InvalidArgumentError(absl::StrCat(
        "unknown dtype '", name,
        "'; ferry's dtypes are bytes, f32, f64, f16, bf16, i32, i64, u8")));
  }
  return *dtype;
}

inline ReduceOp ParseReduceOp(const std::string& name) {
  std::optional<ReduceOp> op = ReduceOpFromName(name);
  if (!op.has_value()) {
    Throw(absl::InvalidArgumentError(
        absl::StrCat("unknown reduce op '", name, "'; ferry's ops are sum, prod, min, max")));
  }
  return *op;
}

// How an object's bytes look through the buffer protocol and DLPack.
struct Layout {
  const char* format;     // struct-module format of one element
  Py_ssize_t itemsize;
  dlpack::DLDataType dl;
};

// bf16 has no buffer-protocol format: it is exported as uint16 ("H") there (numpy has no
// bfloat16), and as DLPack's bfloat16 through __dlpack__.
inline Layout LayoutOf(DType dtype) {
  switch (dtype) {
    case DType::kF32: return {"f", 4, {dlpack::kDLFloat, 32, 1}};
    case DType::kF64: return {"d", 8, {dlpack::kDLFloat, 64, 1}};
    case DType::kF16: return {"e", 2, {dlpack::kDLFloat, 16, 1}};
    case DType::kBF16: return {"H", 2, {dlpack::kDLBfloat, 16, 1}};
    case DType::kI32: return {"i", 4, {dlpack::kDLInt, 32, 1}};
    case DType::kI64: return {"q", 8, {dlpack::kDLInt, 64, 1}};
    case DType::kU8:
    case DType::kBytes:
    default: return {"B", 1, {dlpack::kDLUInt, 8, 1}};
  }
}

inline ObjectName MakeName(const std::string& ns, const std::string& key) {
  ObjectName name;
  name.ns = ns;
  name.key = key;
  return name;
}

inline py::dict NodeToDict(const NodeInfo& node) {
  py::dict d;
  d["id"] = node.id;
  d["name"] = node.name;
  d["alive"] = node.alive;
  d["arena_bytes"] = node.arena_bytes;
  d["arena_used"] = node.arena_used;
  d["objects"] = node.objects;
  d["bandwidth_bps"] = node.bandwidth_bps;
  d["latency_s"] = node.latency_s;
  d["labels"] = node.labels;
  return d;
}

// Whether this thread may drop the GIL: not while the interpreter is finalizing (objects
// destroyed then run their C++ destructors with the GIL held).
inline bool CanReleaseGil() { return Py_IsInitialized() != 0 && _Py_IsFinalizing() == 0; }

// Runs `step(slice)` with the GIL released, in slices of at most 100 ms, until it returns
// true or `timeout` has passed (then false). Between slices it lets Python handle signals, so
// Ctrl-C interrupts a long wait (KeyboardInterrupt).
template <typename Step>
bool WaitInterruptibly(absl::Duration timeout, Step step) {
  constexpr absl::Duration kSlice = absl::Milliseconds(100);
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  while (true) {
    const absl::Duration slice = std::clamp(deadline - absl::Now(), absl::ZeroDuration(), kSlice);
    bool done = false;
    {
      py::gil_scoped_release nogil;
      done = step(slice);
    }
    if (done) return true;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (absl::Now() >= deadline) return false;
  }
}

// ---- zero-copy exports ------------------------------------------------------------------------

// What Object and WritableBuffer share: the bytes, their layout and the count of live buffer
// exports (memoryviews, numpy arrays, DLPack tensors). Touched only with the GIL held.
struct Exportable {
  uint8_t* data = nullptr;
  uint64_t size = 0;
  Layout layout{};
  Py_ssize_t shape = 0;    // elements; storage for Py_buffer.shape
  Py_ssize_t stride = 0;   // storage for Py_buffer.strides
  int exports = 0;
  bool readonly = true;
  bool live = false;       // false once released / sealed / aborted

  void Set(uint8_t* bytes, uint64_t n, DType dtype, bool read_only) {
    data = bytes;
    size = n;
    layout = LayoutOf(dtype);
    shape = static_cast<Py_ssize_t>(n / static_cast<uint64_t>(layout.itemsize));
    stride = layout.itemsize;
    readonly = read_only;
    live = true;
  }
};

template <typename T>
int GetBuffer(PyObject* self, Py_buffer* view, int flags) {
  view->obj = nullptr;
  try {
    T* owner = py::cast<T*>(py::handle(self));
    Exportable& e = owner->exportable();
    if (!e.live) Throw(owner->GoneError());
    if ((flags & PyBUF_WRITABLE) == PyBUF_WRITABLE && e.readonly) {
      PyErr_SetString(PyExc_BufferError,
                      "ferry.Object is read-only: a sealed object cannot be written");
      return -1;
    }
    view->buf = e.data;
    view->obj = self;
    Py_INCREF(self);
    view->len = static_cast<Py_ssize_t>(e.size);
    view->readonly = e.readonly ? 1 : 0;
    view->itemsize = e.layout.itemsize;
    view->format = (flags & PyBUF_FORMAT) != 0 ? const_cast<char*>(e.layout.format) : nullptr;
    view->ndim = 1;
    view->shape = (flags & PyBUF_ND) == PyBUF_ND ? &e.shape : nullptr;
    view->strides = (flags & PyBUF_STRIDES) == PyBUF_STRIDES ? &e.stride : nullptr;
    view->suboffsets = nullptr;
    view->internal = nullptr;
    ++e.exports;
    return 0;
  } catch (const StatusError& err) {
    SetPythonError(err.status);
  } catch (py::error_already_set& err) {
    err.restore();
  } catch (const std::exception& err) {
    PyErr_SetString(PyExc_BufferError, err.what());
  }
  return -1;
}

template <typename T>
void ReleaseBuffer(PyObject* self, Py_buffer*) {
  try {
    --py::cast<T*>(py::handle(self))->exportable().exports;
  } catch (...) {
    PyErr_Clear();  // cannot happen for our own type; never unwind into CPython
  }
}

template <typename T>
py::custom_type_setup BufferSlots() {
  return py::custom_type_setup([](PyHeapTypeObject* heap_type) {
    heap_type->as_buffer.bf_getbuffer = &GetBuffer<T>;
    heap_type->as_buffer.bf_releasebuffer = &ReleaseBuffer<T>;
    heap_type->ht_type.tp_as_buffer = &heap_type->as_buffer;
  });
}

inline absl::Status LiveExports(const char* op, const ObjectName& name, int exports) {
  return absl::FailedPreconditionError(absl::StrCat(
      op, " of object ", PrintableName(name.ns, name.key), ": ", exports,
      " buffer export(s) (memoryview, numpy array or DLPack tensor) of it are still alive; "
      "delete them first"));
}

}  // namespace ferry::python
