// ferry._ferry: the compiled half of the Python SDK (sdk/python/ferry/ is the Python half and
// the documented API; docs/python.md). A thin layer over libferry (include/ferry/client.h):
//
// - every call that can block (RPCs, waits, the copy of a put, destructors that release a
//   pin or cancel a Get) runs with the GIL released;
// - an absl::Status error becomes the ferry.errors exception for its code (FerryError and
//   subclasses, carrying .code and .message);
// - Object and WritableBuffer export the arena bytes zero-copy through the buffer protocol
//   (and Object through DLPack). Each export holds a reference to its Object, so the pin
//   lives as long as any memoryview / numpy array / DLPack capsule of it; release() and
//   seal() refuse (BufferError) while exports are alive, so no view can outlive its pin.
//
// Threading: Python objects are touched only with the GIL held. The C++ objects they wrap are
// thread-safe where libferry says so (Client, GetHandle); a Client is held by shared_ptr so
// that close() while another thread is inside a call leaves that call a live Client.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/names.h"
#include "ferry/client.h"
#include "ferry/object.h"
#include "sdk/python/dlpack.h"
#include "sdk/python/support.h"

namespace ferry::python {
namespace {

// ---- Object -----------------------------------------------------------------------------------

class Object {
 public:
  explicit Object(ObjectView view)
      : view_(std::move(view)), name_(view_.name()), meta_(view_.meta()), info_(view_.info()) {
    e_.Set(const_cast<uint8_t*>(view_.data()), view_.size(), meta_.dtype, /*read_only=*/true);
  }
  Object(const Object&) = delete;
  Object& operator=(const Object&) = delete;
  ~Object() {
    if (!view_.valid()) return;
    if (CanReleaseGil()) {
      py::gil_scoped_release nogil;
      view_ = ObjectView();
    } else {
      view_ = ObjectView();
    }
  }

  Exportable& exportable() { return e_; }
  absl::Status GoneError() const {
    return absl::FailedPreconditionError(absl::StrCat(
        "object ", PrintableName(name_.ns, name_.key), " was released; Get it again"));
  }

  void Release() {
    if (!e_.live) return;
    if (e_.exports > 0) {
      PyErr_SetString(PyExc_BufferError,
                      std::string(LiveExports("release", name_, e_.exports).message()).c_str());
      throw py::error_already_set();
    }
    e_.live = false;
    absl::Status s;
    {
      py::gil_scoped_release nogil;
      s = view_.Release();
    }
    Check(s);
  }

  py::bytes ToBytes() {
    if (!e_.live) Throw(GoneError());
    return py::bytes(reinterpret_cast<const char*>(e_.data), e_.size);
  }

  py::capsule DLPack(py::object self, py::object stream);

  const ObjectName& name() const { return name_; }
  const ObjectMeta& meta() const { return meta_; }
  const GetInfo& info() const { return info_; }
  bool released() const { return !e_.live; }
  int exports() const { return e_.exports; }

 private:
  ObjectView view_;
  const ObjectName name_;
  const ObjectMeta meta_;
  const GetInfo info_;
  Exportable e_;
};

// One DLPack export: the tensor plus what keeps it valid (a reference to the Object).
struct DLPackExport {
  dlpack::DLManagedTensor tensor{};
  int64_t shape[1] = {0};
  PyObject* owner = nullptr;   // a strong reference to the exporting ferry.Object
  Object* object = nullptr;    // owner's C++ half, for the export count
};

// DLPack's deleter may be called from any thread, with or without the GIL.
void DLPackDeleter(dlpack::DLManagedTensor* tensor) {
  auto* ex = static_cast<DLPackExport*>(tensor->manager_ctx);
  if (Py_IsInitialized() != 0) {
    PyGILState_STATE gil = PyGILState_Ensure();
    --ex->object->exportable().exports;
    Py_DECREF(ex->owner);
    PyGILState_Release(gil);
  }
  delete ex;
}

// A capsule that was never consumed still owns its tensor.
void DLPackCapsuleDestructor(PyObject* capsule) {
  if (PyCapsule_IsValid(capsule, dlpack::kCapsuleName) == 0) return;  // consumed (renamed)
  auto* tensor = static_cast<dlpack::DLManagedTensor*>(
      PyCapsule_GetPointer(capsule, dlpack::kCapsuleName));
  if (tensor != nullptr && tensor->deleter != nullptr) tensor->deleter(tensor);
}

py::capsule Object::DLPack(py::object self, py::object stream) {
  if (!stream.is_none()) {
    Throw(absl::InvalidArgumentError(
        "__dlpack__: ferry objects live in host memory; stream must be None"));
  }
  if (!e_.live) Throw(GoneError());
  auto ex = std::make_unique<DLPackExport>();
  ex->shape[0] = e_.shape;
  dlpack::DLTensor& t = ex->tensor.dl_tensor;
  t.data = e_.data;
  t.device = {dlpack::kDLCPU, 0};
  t.ndim = 1;
  t.dtype = e_.layout.dl;
  t.shape = ex->shape;
  t.strides = nullptr;
  t.byte_offset = 0;
  ex->tensor.manager_ctx = ex.get();
  ex->tensor.deleter = &DLPackDeleter;
  ex->owner = self.release().ptr();   // the reference the export holds
  ex->object = this;
  PyObject* capsule =
      PyCapsule_New(&ex->tensor, dlpack::kCapsuleName, &DLPackCapsuleDestructor);
  if (capsule == nullptr) {
    Py_DECREF(ex->owner);
    throw py::error_already_set();
  }
  ++e_.exports;
  ex.release();  // owned by the capsule (then by the consumer) from here on
  return py::reinterpret_steal<py::capsule>(capsule);
}

// ---- WritableBuffer --------------------------------------------------------------------------

class Writable {
 public:
  explicit Writable(WritableObject object) : object_(std::move(object)), name_(object_.name()) {}
  Writable(const Writable&) = delete;
  Writable& operator=(const Writable&) = delete;
  ~Writable() {
    // An unsealed object is aborted by WritableObject's destructor: one RPC.
    if (CanReleaseGil()) {
      py::gil_scoped_release nogil;
      object_ = WritableObject();
    } else {
      object_ = WritableObject();
    }
  }

  void Init(DType dtype) { e_.Set(object_.data(), object_.size(), dtype, /*read_only=*/false); }
  Exportable& exportable() { return e_; }
  absl::Status GoneError() const {
    return absl::FailedPreconditionError(absl::StrCat(
        "writable object ", PrintableName(name_.ns, name_.key),
        " was already sealed or aborted"));
  }

  void Seal() { Finish("seal", /*seal=*/true); }
  void Abort() { Finish("abort", /*seal=*/false); }
  const ObjectName& name() const { return name_; }
  uint64_t size() const { return e_.size; }
  bool closed() const { return !e_.live; }

 private:
  void Finish(const char* op, bool seal) {
    if (!e_.live) Throw(GoneError());
    if (e_.exports > 0) {
      PyErr_SetString(PyExc_BufferError,
                      std::string(LiveExports(op, name_, e_.exports).message()).c_str());
      throw py::error_already_set();
    }
    absl::Status s;
    {
      py::gil_scoped_release nogil;
      s = seal ? object_.Seal() : object_.Abort();
    }
    // A failed Seal leaves the object writable (it may be sealed again or aborted).
    if (s.ok() || !seal) e_.live = false;
    Check(s);
  }

  WritableObject object_;
  const ObjectName name_;
  Exportable e_;
};

// ---- GetHandle ---------------------------------------------------------------------------------

class Handle {
 public:
  explicit Handle(GetHandle handle) : handle_(std::move(handle)) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    // Cancels and waits for an unfinished Get, drops an untaken pin.
    if (CanReleaseGil()) {
      py::gil_scoped_release nogil;
      handle_ = GetHandle();
    } else {
      handle_ = GetHandle();
    }
  }

  GetHandle& handle() { return handle_; }
  bool Ready() const { return handle_.Ready(); }
  void Cancel() { handle_.Cancel(); }

  // The first Wait that finds the Get finished takes its outcome; later Waits return the same
  // Object (or raise the same error).
  py::object Wait(std::optional<double> timeout_s) {
    const absl::Duration timeout = DurationFrom(timeout_s, "wait timeout");
    if (!result_.is_none()) return result_;
    if (!error_.ok()) Throw(error_);
    GetHandle* self[] = {&handle_};
    const bool done = WaitInterruptibly(timeout, [&](absl::Duration slice) {
      return WaitAny(self, slice).ok();
    });
    if (!done) {
      Throw(absl::DeadlineExceededError(absl::StrCat(
          "Get ", PrintableName(handle_.name().ns, handle_.name().key),
          " has not finished within ", absl::FormatDuration(timeout), " (it is still running)")));
    }
    // One taker at a time; blocked on only with the GIL released (no lock-order inversion).
    std::unique_lock<std::mutex> lock(take_mu_, std::defer_lock);
    {
      py::gil_scoped_release nogil;
      lock.lock();
    }
    if (!result_.is_none()) return result_;   // another thread took it meanwhile
    if (!error_.ok()) Throw(error_);
    absl::StatusOr<ObjectView> view;
    {
      py::gil_scoped_release nogil;
      view = handle_.Wait(absl::ZeroDuration());
    }
    if (!view.ok()) {
      error_ = view.status();
      Throw(error_);
    }
    result_ = py::cast(std::make_unique<Object>(std::move(*view)));
    return result_;
  }

  const ObjectName& name() const { return handle_.name(); }

 private:
  GetHandle handle_;
  std::mutex take_mu_;
  // Set once, by the thread holding take_mu_ and the GIL.
  py::object result_ = py::none();
  absl::Status error_;
};

// ---- Client ------------------------------------------------------------------------------------

class PyClient {
 public:
  explicit PyClient(std::unique_ptr<Client> client) : client_(std::move(client)) {}
  PyClient(const PyClient&) = delete;
  PyClient& operator=(const PyClient&) = delete;
  ~PyClient() { Close(); }

  // Destroys the Client once no call is using it: its running async Gets end CANCELLED.
  void Close() {
    std::shared_ptr<Client> client = std::move(client_);
    client_.reset();
    if (client == nullptr) return;
    if (CanReleaseGil()) {
      py::gil_scoped_release nogil;
      client.reset();
    }
  }

  std::shared_ptr<Client> client() const {
    if (client_ == nullptr) Throw(absl::FailedPreconditionError("the ferry client is closed"));
    return client_;
  }

  void Put(const std::string& ns, const std::string& key, const py::object& buffer,
           const std::string& dtype_name, bool checksum) {
    const ObjectName name = MakeName(ns, key);
    const DType dtype = ParseDType(dtype_name);
    Py_buffer view;
    if (PyObject_GetBuffer(buffer.ptr(), &view, PyBUF_RECORDS_RO) != 0) {
      throw py::error_already_set();
    }
    // Released with the GIL held, on every path.
    std::unique_ptr<Py_buffer, void (*)(Py_buffer*)> guard(&view, &PyBuffer_Release);
    if (PyBuffer_IsContiguous(&view, 'C') == 0) {
      Throw(absl::InvalidArgumentError(absl::StrCat(
          "put of object ", PrintableName(name.ns, name.key),
          ": the buffer is not C-contiguous (a strided view such as a[::2]); nothing was "
          "stored. Pass a contiguous copy, e.g. numpy.ascontiguousarray(a)")));
    }
    ObjectMeta meta;
    meta.size = static_cast<uint64_t>(view.len);
    meta.dtype = dtype;
    meta.checksum = checksum;
    std::shared_ptr<Client> c = client();
    absl::Status s;
    {
      py::gil_scoped_release nogil;
      absl::StatusOr<WritableObject> object = c->Create(name, meta);
      s = object.status();
      if (s.ok()) {
        s = object->Write(0, {static_cast<const uint8_t*>(view.buf), meta.size});
        if (s.ok()) s = object->Seal();   // on failure the destructor aborts it
      }
    }
    Check(s);
  }

  std::unique_ptr<Object> Get(const std::string& ns, const std::string& key,
                              std::optional<double> timeout_s) {
    const absl::Duration timeout = DurationFrom(timeout_s, "get timeout");
    std::shared_ptr<Client> c = client();
    absl::StatusOr<ObjectView> view;
    {
      py::gil_scoped_release nogil;
      view = c->Get(MakeName(ns, key), timeout);
    }
    return std::make_unique<Object>(Unwrap(std::move(view)));
  }

  std::unique_ptr<Handle> GetAsync(const std::string& ns, const std::string& key,
                                   std::optional<double> timeout_s) {
    const absl::Duration timeout = DurationFrom(timeout_s, "get timeout");
    std::shared_ptr<Client> c = client();
    return std::make_unique<Handle>(c->GetAsync(MakeName(ns, key), timeout));
  }

  std::unique_ptr<Writable> Create(const std::string& ns, const std::string& key, uint64_t size,
                                   const std::string& dtype_name, bool checksum) {
    ObjectMeta meta;
    meta.size = size;
    meta.dtype = ParseDType(dtype_name);
    meta.checksum = checksum;
    std::shared_ptr<Client> c = client();
    absl::StatusOr<WritableObject> object;
    {
      py::gil_scoped_release nogil;
      object = c->Create(MakeName(ns, key), meta);
    }
    auto writable = std::make_unique<Writable>(Unwrap(std::move(object)));
    writable->Init(meta.dtype);
    return writable;
  }

  void Delete(const std::string& ns, const std::string& key) {
    std::shared_ptr<Client> c = client();
    absl::Status s;
    {
      py::gil_scoped_release nogil;
      s = c->Delete(MakeName(ns, key));
    }
    Check(s);
  }

  // ---- batches: one outcome per entry, None (done) or (code name, message) ----------------

  static py::object Outcome(const absl::Status& s) {
    if (s.ok()) return py::none();
    return py::make_tuple(std::string(absl::StatusCodeToString(s.code())), std::string(s.message()));
  }

  static std::vector<ObjectName> Names(const std::string& ns, const std::vector<std::string>& keys) {
    std::vector<ObjectName> names;
    names.reserve(keys.size());
    for (const std::string& key : keys) names.push_back(MakeName(ns, key));
    return names;
  }

  py::list PutBatch(const std::string& ns, const std::vector<std::string>& keys, const py::list& buffers,
                    const std::vector<std::string>& dtype_names, bool checksum) {
    if (static_cast<size_t>(py::len(buffers)) != keys.size() || dtype_names.size() != keys.size()) {
      Throw(absl::InvalidArgumentError(absl::StrCat("put_batch: ", keys.size(), " keys, ", py::len(buffers),
                                                    " buffers and ", dtype_names.size(), " dtypes")));
    }
    // Every buffer is acquired (and checked) before anything is stored, and released with the
    // GIL held on every path.
    auto release_all = [](std::vector<Py_buffer>* views) {
      for (Py_buffer& v : *views) PyBuffer_Release(&v);
    };
    std::vector<Py_buffer> views;
    views.reserve(keys.size());
    std::unique_ptr<std::vector<Py_buffer>, decltype(release_all)> guard(&views, release_all);
    std::vector<Client::PutEntry> entries(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      Py_buffer view;
      if (PyObject_GetBuffer(buffers[i].ptr(), &view, PyBUF_RECORDS_RO) != 0) throw py::error_already_set();
      views.push_back(view);
      if (PyBuffer_IsContiguous(&view, 'C') == 0) {
        Throw(absl::InvalidArgumentError(absl::StrCat(
            "put_batch entry ", i, " (", PrintableName(ns, keys[i]),
            "): the buffer is not C-contiguous (a strided view such as a[::2]); nothing was stored. "
            "Pass a contiguous copy, e.g. numpy.ascontiguousarray(a)")));
      }
      entries[i].name = MakeName(ns, keys[i]);
      entries[i].bytes = {static_cast<const uint8_t*>(view.buf), static_cast<size_t>(view.len)};
      entries[i].dtype = ParseDType(dtype_names[i]);
      entries[i].checksum = checksum;
    }
    std::shared_ptr<Client> c = client();
    absl::StatusOr<std::vector<absl::Status>> r;
    {
      py::gil_scoped_release nogil;
      r = c->PutBatch(entries);
    }
    py::list out;
    for (const absl::Status& s : Unwrap(std::move(r))) out.append(Outcome(s));
    return out;
  }

  // Object (done) or (code name, message) per key.
  py::list GetBatch(const std::string& ns, const std::vector<std::string>& keys, std::optional<double> timeout_s) {
    const absl::Duration timeout = DurationFrom(timeout_s, "get timeout");
    const std::vector<ObjectName> names = Names(ns, keys);
    std::shared_ptr<Client> c = client();
    absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> r;
    {
      py::gil_scoped_release nogil;
      r = c->GetBatch(names, timeout);
    }
    py::list out;
    for (absl::StatusOr<ObjectView>& view : Unwrap(std::move(r))) {
      if (view.ok()) {
        out.append(py::cast(std::make_unique<Object>(*std::move(view))));
      } else {
        out.append(Outcome(view.status()));
      }
    }
    return out;
  }

  py::list DeleteBatch(const std::string& ns, const std::vector<std::string>& keys) {
    const std::vector<ObjectName> names = Names(ns, keys);
    std::shared_ptr<Client> c = client();
    absl::StatusOr<std::vector<absl::Status>> r;
    {
      py::gil_scoped_release nogil;
      r = c->DeleteBatch(names);
    }
    py::list out;
    for (const absl::Status& s : Unwrap(std::move(r))) out.append(Outcome(s));
    return out;
  }

  py::list List(const std::string& ns, const std::string& prefix, uint32_t limit) {
    std::shared_ptr<Client> c = client();
    absl::StatusOr<std::vector<ObjectInfo>> listed;
    {
      py::gil_scoped_release nogil;
      listed = c->List(ns, prefix, limit);
    }
    py::list out;
    for (const ObjectInfo& info : Unwrap(std::move(listed))) {
      py::dict d;
      d["namespace"] = info.name.ns;
      d["key"] = info.name.key;
      d["size"] = info.meta.size;
      d["dtype"] = DTypeName(info.meta.dtype);
      d["count"] = info.meta.count;
      d["checksum"] = info.meta.checksum;
      d["complete_copies"] = info.complete_copies;
      d["partial_copies"] = info.partial_copies;
      out.append(std::move(d));
    }
    return out;
  }

  // [{"node", "ok", "error"}] for a broadcast's targets.
  static py::list TargetsToList(const std::vector<BroadcastResult::Target>& targets) {
    py::list out;
    for (const BroadcastResult::Target& t : targets) {
      py::dict d;
      d["node"] = t.node;
      d["ok"] = t.ok;
      d["error"] = t.error;
      out.append(std::move(d));
    }
    return out;
  }

  py::dict Broadcast(const std::string& ns, const std::string& key,
                     const std::vector<std::string>& nodes, std::optional<double> timeout_s) {
    const absl::Duration timeout = DurationFrom(timeout_s, "broadcast timeout");
    std::shared_ptr<Client> c = client();
    absl::StatusOr<BroadcastResult> result;
    {
      py::gil_scoped_release nogil;
      result = c->Broadcast(MakeName(ns, key), nodes, timeout);
    }
    const BroadcastResult r = Unwrap(std::move(result));
    py::dict out;
    out["targets"] = TargetsToList(r.targets);
    out["seconds"] = r.seconds;
    return out;
  }

  py::dict BroadcastBatch(const std::string& ns, const std::vector<std::string>& keys,
                          const std::vector<std::string>& nodes, std::optional<double> timeout_s) {
    const absl::Duration timeout = DurationFrom(timeout_s, "broadcast timeout");
    const std::vector<ObjectName> names = Names(ns, keys);
    std::shared_ptr<Client> c = client();
    absl::StatusOr<BatchBroadcastResult> result;
    {
      py::gil_scoped_release nogil;
      result = c->BroadcastBatch(names, nodes, timeout);
    }
    const BatchBroadcastResult r = Unwrap(std::move(result));
    py::list errors;
    for (const BatchBroadcastResult::EntryError& e : r.errors) {
      py::dict d;
      d["index"] = e.index;
      d["key"] = e.index < keys.size() ? keys[e.index] : std::string();
      d["node"] = e.node;
      d["code"] = std::string(absl::StatusCodeToString(e.code));
      d["error"] = e.error;
      errors.append(std::move(d));
    }
    py::dict out;
    out["targets"] = TargetsToList(r.targets);
    out["errors"] = errors;
    out["seconds"] = r.seconds;
    out["bytes"] = r.bytes;
    return out;
  }

  // {"key", "namespace", "size", "dtype", "count", "root_node", "used" (indices into keys),
  // "copies" (as broadcast's targets), "seconds"}.
  py::dict Reduce(const std::string& ns, const std::vector<std::string>& keys, const std::string& result_key,
                  const std::string& op_name, const std::string& dtype_name, uint32_t num_objects,
                  std::optional<double> timeout_s, bool all, const std::string& root) {
    const absl::Duration timeout = DurationFrom(timeout_s, all ? "allreduce timeout" : "reduce timeout");
    const ReduceOp op = ParseReduceOp(op_name);
    const DType dtype = ParseDType(dtype_name);
    const std::vector<ObjectName> inputs = Names(ns, keys);
    const ObjectName result = MakeName(ns, result_key);
    std::shared_ptr<Client> c = client();
    absl::StatusOr<ReduceResult> reduced;
    {
      py::gil_scoped_release nogil;
      const Client::ReduceOptions options{num_objects, timeout, root};
      reduced = all ? c->AllReduce(inputs, result, op, dtype, options) : c->Reduce(inputs, result, op, dtype, options);
    }
    const ReduceResult r = Unwrap(std::move(reduced));
    py::dict out;
    out["key"] = r.result.key;
    out["namespace"] = r.result.ns;
    out["size"] = r.meta.size;
    out["dtype"] = DTypeName(r.meta.dtype);
    out["count"] = r.meta.count != 0 ? r.meta.count : r.meta.size / std::max<size_t>(1, DTypeSize(r.meta.dtype));
    out["root_node"] = r.root_node;
    out["used"] = r.used;
    out["copies"] = TargetsToList(r.copies);
    out["seconds"] = r.seconds;
    return out;
  }

  static py::dict GroupToDict(const GroupInfo& g) {
    py::list members;
    for (const GroupMember& m : g.members) {
      py::dict d;
      d["rank"] = m.rank;
      d["node"] = m.node;
      d["node_id"] = m.node_id;
      d["host"] = m.host;
      members.append(std::move(d));
    }
    py::dict out;
    out["name"] = g.name;
    out["id"] = g.id;
    out["members"] = members;
    out["revoked"] = g.revoked;
    out["revoked_why"] = g.revoked_why;
    out["collectives"] = g.collectives;
    out["lease_id"] = g.lease_id;
    return out;
  }

  py::dict CreateGroupFromLease(const std::string& name, uint64_t lease_id, const std::string& holder) {
    std::shared_ptr<Client> c = client();
    absl::StatusOr<GroupInfo> g;
    {
      py::gil_scoped_release nogil;
      g = c->CreateGroupFromLease(name, lease_id, holder);
    }
    return GroupToDict(Unwrap(std::move(g)));
  }

  py::dict CreateGroup(const std::string& name, const std::vector<std::string>& nodes) {
    std::shared_ptr<Client> c = client();
    absl::StatusOr<GroupInfo> g;
    {
      py::gil_scoped_release nogil;
      g = c->CreateGroup(name, nodes);
    }
    return GroupToDict(Unwrap(std::move(g)));
  }

  py::dict DeleteGroup(const std::string& name) {
    std::shared_ptr<Client> c = client();
    absl::StatusOr<GroupInfo> g;
    {
      py::gil_scoped_release nogil;
      g = c->DeleteGroup(name);
    }
    return GroupToDict(Unwrap(std::move(g)));
  }

  py::list ListGroups() {
    std::shared_ptr<Client> c = client();
    absl::StatusOr<std::vector<GroupInfo>> gs;
    {
      py::gil_scoped_release nogil;
      gs = c->ListGroups();
    }
    py::list out;
    for (const GroupInfo& g : Unwrap(std::move(gs))) out.append(GroupToDict(g));
    return out;
  }

  // {"key", "namespace", "size", "dtype", "nodes", "seconds", "dynamic", "used" (ranks)}.
  py::dict GroupCollective(const std::string& ns, const std::string& group, const std::string& kind,
                           const std::vector<std::string>& keys, const std::string& result_key,
                           const std::string& op_name, const std::string& dtype_name, uint32_t root,
                           std::optional<double> timeout_s, bool fallback) {
    std::optional<GroupOp> op = GroupOpFromName(kind);
    if (!op.has_value()) {
      Throw(absl::InvalidArgumentError(absl::StrCat(
          "unknown group collective '", kind, "'; ferry's are allreduce, reduce-scatter, allgather, broadcast, reduce")));
    }
    Client::GroupCollectiveOptions o;
    o.op = ParseReduceOp(op_name);
    o.dtype = ParseDType(dtype_name);
    o.root = root;
    o.timeout = DurationFrom(timeout_s, "group collective timeout");
    o.dynamic_fallback = fallback;
    const std::vector<ObjectName> inputs = Names(ns, keys);
    const ObjectName result = MakeName(ns, result_key);
    std::shared_ptr<Client> c = client();
    absl::StatusOr<GroupResult> done;
    {
      py::gil_scoped_release nogil;
      done = c->GroupCollective(group, *op, inputs, result, o);
    }
    const GroupResult r = Unwrap(std::move(done));
    py::dict out;
    out["key"] = r.result.key;
    out["namespace"] = r.result.ns;
    out["size"] = r.meta.size;
    out["dtype"] = DTypeName(r.meta.dtype);
    out["nodes"] = r.nodes;
    out["seconds"] = r.seconds;
    out["dynamic"] = r.dynamic;
    out["used"] = r.used;
    return out;
  }

  py::dict Status() {
    std::shared_ptr<Client> c = client();
    absl::StatusOr<NodeStatus> status;
    {
      py::gil_scoped_release nogil;
      status = c->Status();
    }
    const NodeStatus st = Unwrap(std::move(status));
    py::dict out;
    out["node"] = NodeToDict(st.self);
    out["coordinator_connected"] = st.coordinator_connected;
    out["pinned"] = st.pinned;
    out["evictions"] = st.evictions;
    out["bytes_received"] = st.bytes_received;
    out["bytes_sent"] = st.bytes_sent;
    out["retries"] = st.retries;
    out["failures"] = st.failures;
    py::list cluster;
    for (const NodeInfo& node : st.cluster) cluster.append(NodeToDict(node));
    out["cluster"] = cluster;
    return out;
  }

 private:
  std::shared_ptr<Client> client_;
};

std::unique_ptr<PyClient> Connect(const std::string& socket_path, const std::string& ns,
                                  double rpc_timeout_s) {
  ConnectOptions options;
  options.ns = ns;
  options.rpc_timeout = DurationFrom(rpc_timeout_s, "rpc_timeout");
  if (options.rpc_timeout == absl::InfiniteDuration()) options.rpc_timeout = absl::Hours(24 * 365);
  absl::StatusOr<std::unique_ptr<Client>> client;
  {
    py::gil_scoped_release nogil;
    client = Client::Connect(socket_path, options);
  }
  return std::make_unique<PyClient>(Unwrap(std::move(client)));
}

size_t WaitAnyOf(const std::vector<Handle*>& handles, std::optional<double> timeout_s) {
  const absl::Duration timeout = DurationFrom(timeout_s, "wait_any timeout");
  std::vector<GetHandle*> pointers;
  pointers.reserve(handles.size());
  for (Handle* h : handles) {
    if (h == nullptr) Throw(absl::InvalidArgumentError("wait_any: a handle is None"));
    pointers.push_back(&h->handle());
  }
  std::optional<absl::StatusOr<size_t>> result;
  const bool done = WaitInterruptibly(timeout, [&](absl::Duration slice) {
    absl::StatusOr<size_t> r = WaitAny(pointers, slice);
    if (r.ok() || r.status().code() != absl::StatusCode::kDeadlineExceeded) {
      result = std::move(r);
      return true;
    }
    return false;
  });
  if (!done) {
    Throw(absl::DeadlineExceededError(absl::StrCat("none of ", handles.size(),
                                                   " Gets finished within ",
                                                   absl::FormatDuration(timeout))));
  }
  return Unwrap(std::move(*result));
}

}  // namespace
}  // namespace ferry::python

PYBIND11_MODULE(_ferry, m) {
  using namespace ferry;          // NOLINT: the module's definitions read better unqualified
  using namespace ferry::python;  // NOLINT
  m.doc() = "Compiled half of the ferry Python SDK; use the `ferry` package instead.";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      SetPythonError(e.status);
    }
  });

  py::class_<Object>(m, "Object", BufferSlots<Object>(),
                     "A pinned, read-only, zero-copy view of a sealed object in the local "
                     "arena (see ferry.Client.get).")
      .def_property_readonly("key", [](const Object& o) { return o.name().key; })
      .def_property_readonly("namespace", [](const Object& o) { return o.name().ns; })
      .def_property_readonly("size", [](const Object& o) { return o.meta().size; },
                             "Size in bytes.")
      .def_property_readonly("nbytes", [](const Object& o) { return o.meta().size; })
      .def_property_readonly("dtype", [](const Object& o) { return DTypeName(o.meta().dtype); },
                             "ferry dtype name: bytes, f32, f64, f16, bf16, i32, i64, u8.")
      .def_property_readonly("count", [](const Object& o) { return o.meta().count; },
                             "Number of elements.")
      .def_property_readonly("shape",
                             [](const Object& o) {
                               return py::make_tuple(
                                   o.meta().size /
                                   static_cast<uint64_t>(LayoutOf(o.meta().dtype).itemsize));
                             })
      .def_property_readonly("checksum", [](const Object& o) { return o.meta().checksum; })
      .def_property_readonly("pulled", [](const Object& o) { return o.info().pulled; },
                             "True if this get moved the object from another node.")
      .def_property_readonly("source_node", [](const Object& o) { return o.info().source_node; })
      .def_property_readonly("pull_seconds", [](const Object& o) { return o.info().seconds; })
      .def_property_readonly("released", &Object::released)
      .def_property_readonly("exports", &Object::exports,
                             "Live buffer/DLPack exports (each keeps the pin alive).")
      .def("release", &Object::Release,
           "Drops the pin now. Raises BufferError while memoryviews / numpy arrays / DLPack "
           "tensors of this object are alive; afterwards every access raises "
           "FailedPreconditionError. Idempotent.")
      .def("tobytes", &Object::ToBytes, "A copy of the bytes.")
      .def(
          "__dlpack__",
          [](py::object self, py::object stream) {
            return py::cast<Object*>(self)->DLPack(self, std::move(stream));
          },
          py::arg("stream") = py::none(),
          "DLPack capsule (kDLCPU, 1-D, the object's dtype). The tensor keeps the pin alive.")
      .def("__dlpack_device__", [](const Object&) { return py::make_tuple(dlpack::kDLCPU, 0); })
      .def("__len__", [](const Object& o) {
        return o.meta().size / static_cast<uint64_t>(LayoutOf(o.meta().dtype).itemsize);
      })
      .def("__repr__", [](const Object& o) {
        return absl::StrCat("<ferry.Object ", PrintableName(o.name().ns, o.name().key), " ",
                            o.meta().size, " bytes ", DTypeName(o.meta().dtype),
                            o.released() ? " released" : "", ">");
      });

  py::class_<Writable>(m, "WritableBuffer", BufferSlots<Writable>(),
                       "An object being written in the arena (see ferry.Client.create).")
      .def_property_readonly("key", [](const Writable& w) { return w.name().key; })
      .def_property_readonly("namespace", [](const Writable& w) { return w.name().ns; })
      .def_property_readonly("size", &Writable::size)
      .def_property_readonly("closed", &Writable::closed, "True once sealed or aborted.")
      .def("seal", &Writable::Seal,
           "Publishes the object. Raises BufferError while exports of this buffer are alive.")
      .def("abort", &Writable::Abort, "Discards the object.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Writable& w, py::object type, py::object, py::object) {
        if (w.closed()) return false;
        if (type.is_none()) {
          w.Seal();
        } else {
          try {
            w.Abort();
          } catch (...) {
            // the body's exception is the one worth seeing
          }
        }
        return false;
      });

  py::class_<Handle>(m, "GetHandle", "A get running in the background (ferry.Client.get_async).")
      .def_property_readonly("key", [](const Handle& h) { return h.name().key; })
      .def_property_readonly("namespace", [](const Handle& h) { return h.name().ns; })
      .def("ready", &Handle::Ready, "True once the get has finished; does not block.")
      .def("cancel", &Handle::Cancel,
           "Cancels the get (its wait then raises CancelledError); returns at once.")
      .def("wait", &Handle::Wait, py::arg("timeout") = py::none(),
           "Waits (None: forever) and returns the ferry.Object, or raises the get's error. "
           "DeadlineExceededError if not finished within `timeout` (the get keeps running).");

  py::class_<PyClient>(m, "Client")
      .def("close", &PyClient::Close)
      .def("put", &PyClient::Put, py::arg("namespace"), py::arg("key"), py::arg("buffer"),
           py::arg("dtype"), py::arg("checksum"))
      .def("get", &PyClient::Get, py::arg("namespace"), py::arg("key"), py::arg("timeout"))
      .def("get_async", &PyClient::GetAsync, py::arg("namespace"), py::arg("key"),
           py::arg("timeout"), py::keep_alive<0, 1>())
      .def("create", &PyClient::Create, py::arg("namespace"), py::arg("key"), py::arg("size"),
           py::arg("dtype"), py::arg("checksum"))
      .def("delete", &PyClient::Delete, py::arg("namespace"), py::arg("key"))
      .def("list", &PyClient::List, py::arg("namespace"), py::arg("prefix"), py::arg("limit"))
      .def("broadcast", &PyClient::Broadcast, py::arg("namespace"), py::arg("key"),
           py::arg("nodes"), py::arg("timeout"))
      .def("broadcast_batch", &PyClient::BroadcastBatch, py::arg("namespace"), py::arg("keys"),
           py::arg("nodes"), py::arg("timeout"))
      .def("put_batch", &PyClient::PutBatch, py::arg("namespace"), py::arg("keys"), py::arg("buffers"),
           py::arg("dtypes"), py::arg("checksum"))
      .def("get_batch", &PyClient::GetBatch, py::arg("namespace"), py::arg("keys"), py::arg("timeout"))
      .def("delete_batch", &PyClient::DeleteBatch, py::arg("namespace"), py::arg("keys"))
      .def("reduce", &PyClient::Reduce, py::arg("namespace"), py::arg("inputs"), py::arg("result"),
           py::arg("op"), py::arg("dtype"), py::arg("num_objects"), py::arg("timeout"), py::arg("all"),
           py::arg("root") = std::string())
      .def("create_group", &PyClient::CreateGroup, py::arg("name"), py::arg("nodes"))
      .def("create_group_from_lease", &PyClient::CreateGroupFromLease, py::arg("name"), py::arg("lease_id"),
           py::arg("holder"))
      .def("delete_group", &PyClient::DeleteGroup, py::arg("name"))
      .def("list_groups", &PyClient::ListGroups)
      .def("group_collective", &PyClient::GroupCollective, py::arg("namespace"), py::arg("group"), py::arg("kind"),
           py::arg("inputs"), py::arg("result"), py::arg("op"), py::arg("dtype"), py::arg("root"), py::arg("timeout"),
           py::arg("fallback"))
      .def("status", &PyClient::Status)
      .def_property_readonly("namespace", [](const PyClient& c) {
        return c.client()->default_namespace();
      });

  m.def("connect", &Connect, py::arg("socket_path"), py::arg("namespace"),
        py::arg("rpc_timeout"));
  m.def("wait_any", &WaitAnyOf, py::arg("handles"), py::arg("timeout"),
        "Index of a finished handle in `handles`, waiting up to `timeout` (None: forever).");
}
