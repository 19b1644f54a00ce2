// ferry::Client, ObjectView and WritableObject: argument checks and object lifetimes on top
// of ClientImpl's RPCs.
#include "ferry/client.h"

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/batch.h"
#include "core/names.h"
#include "common/status_macros.h"
#include "sdk/async_get.h"
#include "sdk/client_impl.h"
#include "sdk/convert.h"

namespace ferry {
namespace {

// A collective's names: the result's empty namespace is the client's default, each input's
// the result's; every name checked.
absl::Status ResolveCollectiveNames(const std::string& default_ns, ObjectName& result, std::vector<ObjectName>& inputs) {
  if (result.ns.empty()) result.ns = default_ns;
  FERRY_RETURN_IF_ERROR(sdk::ValidateName(result));
  for (ObjectName& n : inputs) {
    if (n.ns.empty()) n.ns = result.ns;
    FERRY_RETURN_IF_ERROR(sdk::ValidateName(n));
  }
  return absl::OkStatus();
}

// FAILED_PRECONDITION for `op` on a WritableObject that is sealed, aborted or moved from.
absl::Status NotWritable(absl::string_view op, const ObjectName& name) {
  if (name.key.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(op, " on an empty WritableObject (moved from, or never created)"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      op, " of object ", PrintableName(name.ns, name.key), ", which is already sealed or aborted"));
}

ObjectName DefaultName(const std::string& ns, std::string_view key) {
  ObjectName name;
  name.ns = ns;
  name.key = std::string(key);
  return name;
}

// The batch's names with the default namespace filled in, checked as one batch (core/batch.h).
absl::StatusOr<std::vector<ObjectName>> BatchNames(std::span<const ObjectName> names, const std::string& ns) {
  std::vector<ObjectName> resolved(names.begin(), names.end());
  for (ObjectName& n : resolved) {
    if (n.ns.empty()) n.ns = ns;
  }
  FERRY_RETURN_IF_ERROR(ValidateBatchNames(resolved.size(), [&resolved](size_t i) {
    return std::pair<absl::string_view, absl::string_view>(resolved[i].ns, resolved[i].key);
  }));
  return resolved;
}

}  // namespace

// ---- ObjectView -------------------------------------------------------------------------

ObjectView::ObjectView(ObjectView&& other) noexcept
    : impl_(std::move(other.impl_)),
      name_(std::exchange(other.name_, ObjectName())),
      meta_(std::exchange(other.meta_, ObjectMeta())),
      info_(std::exchange(other.info_, GetInfo())),
      data_(std::exchange(other.data_, nullptr)) {
  other.impl_.reset();
}

ObjectView& ObjectView::operator=(ObjectView&& other) noexcept {
  if (this != &other) {
    (void)Release();
    impl_ = std::move(other.impl_);
    other.impl_.reset();
    name_ = std::exchange(other.name_, ObjectName());
    meta_ = std::exchange(other.meta_, ObjectMeta());
    info_ = std::exchange(other.info_, GetInfo());
    data_ = std::exchange(other.data_, nullptr);
  }
  return *this;
}

ObjectView::ObjectView(std::shared_ptr<ClientImpl> impl, ObjectName name, const ArenaSlot& slot)
    : impl_(std::move(impl)),
      name_(std::move(name)),
      meta_(slot.meta),
      info_(slot.info),
      data_(slot.data) {}

// A failed Release in a destructor has no one to tell; ferryd drops the pin anyway when
// the session ends.
ObjectView::~ObjectView() { (void)Release(); }

absl::Status ObjectView::Release() {
  if (impl_ == nullptr) return absl::OkStatus();
  std::shared_ptr<ClientImpl> impl = std::move(impl_);
  impl_.reset();
  data_ = nullptr;
  ObjectName name = std::move(name_);
  name_ = ObjectName();
  meta_ = ObjectMeta();
  info_ = GetInfo();
  return impl->Release(name);
}

// ---- WritableObject ---------------------------------------------------------------------

WritableObject::WritableObject(WritableObject&& other) noexcept
    : impl_(std::move(other.impl_)),
      name_(std::exchange(other.name_, ObjectName())),
      meta_(std::exchange(other.meta_, ObjectMeta())),
      data_(std::exchange(other.data_, nullptr)) {
  other.impl_.reset();
}

WritableObject& WritableObject::operator=(WritableObject&& other) noexcept {
  if (this != &other) {
    if (impl_ != nullptr) (void)Abort();
    impl_ = std::move(other.impl_);
    other.impl_.reset();
    name_ = std::exchange(other.name_, ObjectName());
    meta_ = std::exchange(other.meta_, ObjectMeta());
    data_ = std::exchange(other.data_, nullptr);
  }
  return *this;
}

WritableObject::~WritableObject() {
  if (impl_ != nullptr) (void)Abort();
}

absl::Status WritableObject::Write(uint64_t offset, std::span<const uint8_t> bytes) {
  if (impl_ == nullptr) {
    return NotWritable("write", name_);
  }
  if (offset > meta_.size || bytes.size() > meta_.size - offset) {
    return absl::OutOfRangeError(absl::StrCat(
        "write of ", bytes.size(), " bytes at offset ", offset, " to object ",
        PrintableName(name_.ns, name_.key), " runs past its end (size ", meta_.size, ")"));
  }
  if (!bytes.empty()) std::memcpy(data_ + offset, bytes.data(), bytes.size());
  return absl::OkStatus();
}

absl::Status WritableObject::Seal() {
  if (impl_ == nullptr) {
    return NotWritable("seal", name_);
  }
  FERRY_RETURN_IF_ERROR(impl_->Seal(name_));
  // Empty now; name_ stays for the error message of a second Seal.
  impl_.reset();
  meta_ = ObjectMeta();
  data_ = nullptr;
  return absl::OkStatus();
}

absl::Status WritableObject::Abort() {
  if (impl_ == nullptr) {
    return NotWritable("abort", name_);
  }
  std::shared_ptr<ClientImpl> impl = std::move(impl_);
  impl_.reset();
  meta_ = ObjectMeta();
  data_ = nullptr;
  return impl->Abort(name_);
}

// ---- GetHandle --------------------------------------------------------------------------

GetHandle::GetHandle(GetHandle&& other) noexcept
    : impl_(std::move(other.impl_)), pending_(std::move(other.pending_)) {
  other.impl_.reset();
  other.pending_.reset();
}

GetHandle& GetHandle::operator=(GetHandle&& other) noexcept {
  if (this != &other) {
    Finish();
    impl_ = std::move(other.impl_);
    pending_ = std::move(other.pending_);
    other.impl_.reset();
    other.pending_.reset();
  }
  return *this;
}

GetHandle::~GetHandle() { Finish(); }

void GetHandle::Finish() {
  if (pending_ == nullptr) return;
  if (!pending_->Done()) pending_->Cancel();
  // gRPC runs the callback promptly after TryCancel.
  pending_->WaitDone(absl::InfiniteFuture());
  // A view nobody took still holds ferryd's pin: drop it. Errors have no one to tell, as in
  // ~ObjectView.
  if (impl_ != nullptr) {
    if (absl::StatusOr<ArenaSlot> slot = impl_->FinishGet(*pending_); slot.ok()) {
      (void)impl_->Release(pending_->name());
    }
  }
  pending_.reset();
  impl_.reset();
}

const ObjectName& GetHandle::name() const {
  static const ObjectName* const kEmpty = new ObjectName{"", ""};
  return pending_ != nullptr ? pending_->name() : *kEmpty;
}

bool GetHandle::Ready() const { return pending_ != nullptr && pending_->Done(); }

absl::StatusOr<ObjectView> GetHandle::Wait(absl::Duration timeout) {
  if (pending_ == nullptr) {
    return absl::FailedPreconditionError(
        "Wait on an empty GetHandle (moved from, or never started)");
  }
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  if (!pending_->WaitDone(deadline)) {
    return absl::DeadlineExceededError(absl::StrCat(
        "Get ", PrintableName(name().ns, name().key), " has not finished within ",
        absl::FormatDuration(timeout), " (it is still running)"));
  }
  FERRY_ASSIGN_OR_RETURN(ArenaSlot slot, impl_->FinishGet(*pending_));
  return ObjectView(impl_, pending_->name(), slot);
}

void GetHandle::Cancel() {
  if (pending_ != nullptr) pending_->Cancel();
}

absl::StatusOr<size_t> WaitAny(std::span<GetHandle* const> handles, absl::Duration timeout) {
  if (handles.empty()) return absl::InvalidArgumentError("WaitAny over no handles");
  for (size_t i = 0; i < handles.size(); ++i) {
    if (handles[i] == nullptr || !handles[i]->valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("WaitAny: handle ", i, " is null or empty (moved from, or never started)"));
    }
  }
  const absl::Time deadline =
      timeout == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + timeout;
  AnyWaiter waiter;
  size_t registered = 0;
  std::optional<size_t> ready;
  for (; registered < handles.size(); ++registered) {
    if (handles[registered]->pending_->AddWaiter(&waiter)) {
      ready = registered;
      break;
    }
  }
  if (!ready.has_value()) {
    absl::MutexLock lock(&waiter.mu);
    while (!waiter.fired) {
      if (waiter.cv.WaitWithDeadline(&waiter.mu, deadline)) break;
    }
  }
  // Unregister before `waiter` goes out of scope (Complete signals waiters under its lock).
  for (size_t i = 0; i < registered; ++i) handles[i]->pending_->RemoveWaiter(&waiter);
  if (ready.has_value()) return *ready;
  for (size_t i = 0; i < handles.size(); ++i) {
    if (handles[i]->Ready()) return i;
  }
  return absl::DeadlineExceededError(absl::StrCat("none of ", handles.size(),
                                                  " Gets finished within ",
                                                  absl::FormatDuration(timeout)));
}

absl::StatusOr<size_t> WaitAny(std::span<GetHandle> handles, absl::Duration timeout) {
  std::vector<GetHandle*> pointers;
  pointers.reserve(handles.size());
  for (GetHandle& handle : handles) pointers.push_back(&handle);
  return WaitAny(std::span<GetHandle* const>(pointers), timeout);
}

// ---- Client -----------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& socket_path,
                                                        ConnectOptions options) {
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<ClientImpl> impl,
                         ClientImpl::Connect(socket_path, options));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::shared_ptr<ClientImpl> impl) : impl_(std::move(impl)) {}
Client::~Client() { impl_->CloseGets(); }

const std::string& Client::default_namespace() const { return impl_->default_namespace(); }

absl::StatusOr<WritableObject> Client::Create(const ObjectName& name, const ObjectMeta& meta) {
  FERRY_RETURN_IF_ERROR(sdk::ValidateName(name));
  FERRY_ASSIGN_OR_RETURN(ObjectMeta normalized, sdk::NormalizeMeta(name, meta));
  FERRY_ASSIGN_OR_RETURN(ArenaSlot slot, impl_->Create(name, normalized));
  WritableObject object;
  object.impl_ = impl_;
  object.name_ = name;
  object.meta_ = slot.meta;
  object.data_ = slot.data;
  return object;
}

absl::StatusOr<WritableObject> Client::Create(std::string_view key, uint64_t size) {
  ObjectMeta meta;
  meta.size = size;
  return Create(DefaultName(default_namespace(), key), meta);
}

absl::Status Client::Put(const ObjectName& name, std::span<const uint8_t> bytes, DType dtype) {
  ObjectMeta meta;
  meta.size = bytes.size();
  meta.dtype = dtype;
  FERRY_ASSIGN_OR_RETURN(WritableObject object, Create(name, meta));
  // On any failure below, `object`'s destructor aborts it.
  FERRY_RETURN_IF_ERROR(object.Write(0, bytes));
  return object.Seal();
}

absl::Status Client::Put(std::string_view key, std::span<const uint8_t> bytes) {
  return Put(DefaultName(default_namespace(), key), bytes, DType::kBytes);
}

absl::StatusOr<ObjectView> Client::Get(const ObjectName& name, absl::Duration timeout) {
  FERRY_RETURN_IF_ERROR(sdk::ValidateName(name));
  FERRY_ASSIGN_OR_RETURN(ArenaSlot slot, impl_->Get(name, timeout));
  return ObjectView(impl_, name, slot);
}

absl::StatusOr<ObjectView> Client::Get(std::string_view key, absl::Duration timeout) {
  return Get(DefaultName(default_namespace(), key), timeout);
}

GetHandle Client::GetAsync(const ObjectName& name, absl::Duration timeout) {
  GetHandle handle;
  handle.impl_ = impl_;
  if (absl::Status valid = sdk::ValidateName(name); !valid.ok()) {
    handle.pending_ = std::make_shared<PendingGet>(name, std::move(valid));
  } else {
    handle.pending_ = impl_->StartGet(name, timeout);
  }
  return handle;
}

GetHandle Client::GetAsync(std::string_view key, absl::Duration timeout) {
  return GetAsync(DefaultName(default_namespace(), key), timeout);
}

std::vector<GetHandle> Client::GetManyAsync(std::span<const ObjectName> names,
                                            absl::Duration timeout) {
  std::vector<GetHandle> handles;
  handles.reserve(names.size());
  for (const ObjectName& name : names) handles.push_back(GetAsync(name, timeout));
  return handles;
}

std::vector<GetHandle> Client::GetManyAsync(const std::vector<std::string>& keys,
                                            absl::Duration timeout) {
  std::vector<GetHandle> handles;
  handles.reserve(keys.size());
  for (const std::string& key : keys) handles.push_back(GetAsync(std::string_view(key), timeout));
  return handles;
}

absl::Status Client::Delete(const ObjectName& name) {
  FERRY_RETURN_IF_ERROR(sdk::ValidateName(name));
  return impl_->Delete(name);
}

absl::Status Client::Delete(std::string_view key) {
  return Delete(DefaultName(default_namespace(), key));
}

absl::StatusOr<std::vector<ObjectInfo>> Client::List(std::string_view ns, std::string_view prefix,
                                                     uint32_t limit) {
  const std::string effective_ns = ns.empty() ? default_namespace() : std::string(ns);
  FERRY_RETURN_IF_ERROR(ValidateNamespace(effective_ns));
  if (prefix.size() > kMaxKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("list prefix is ", prefix.size(), " bytes; keys are at most ", kMaxKeyBytes));
  }
  return impl_->List(effective_ns, std::string(prefix), limit);
}

absl::StatusOr<BroadcastResult> Client::Broadcast(const ObjectName& name,
                                                  const std::vector<std::string>& nodes,
                                                  absl::Duration timeout) {
  FERRY_RETURN_IF_ERROR(sdk::ValidateName(name));
  for (const std::string& node : nodes) {
    if (node.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("broadcast of ", PrintableName(name.ns, name.key), ": empty node name"));
    }
  }
  return impl_->Broadcast(name, nodes, timeout);
}

absl::StatusOr<BatchBroadcastResult> Client::BroadcastBatch(std::span<const ObjectName> names,
                                                            const std::vector<std::string>& nodes,
                                                            absl::Duration timeout) {
  FERRY_ASSIGN_OR_RETURN(std::vector<ObjectName> resolved, BatchNames(names, default_namespace()));
  for (const std::string& node : nodes) {
    if (node.empty()) return absl::InvalidArgumentError("batch broadcast: empty node name");
  }
  return impl_->BroadcastBatch(resolved, nodes, timeout);
}

absl::StatusOr<std::vector<absl::StatusOr<WritableObject>>> Client::CreateBatch(std::span<const ObjectName> names,
                                                                                std::span<const ObjectMeta> metas) {
  if (names.size() != metas.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CreateBatch: ", names.size(), " names but ", metas.size(), " metadata entries"));
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<ObjectName> resolved, BatchNames(names, default_namespace()));
  std::vector<ObjectMeta> normalized;
  normalized.reserve(metas.size());
  for (size_t i = 0; i < metas.size(); ++i) {
    absl::StatusOr<ObjectMeta> m = sdk::NormalizeMeta(resolved[i], metas[i]);
    if (!m.ok()) return Annotate(m.status(), absl::StrCat("entry ", i));
    normalized.push_back(*m);
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<absl::StatusOr<ArenaSlot>> slots, impl_->CreateBatch(resolved, normalized));
  std::vector<absl::StatusOr<WritableObject>> out;
  out.reserve(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    if (!slots[i].ok()) {
      out.push_back(slots[i].status());
      continue;
    }
    WritableObject object;
    object.impl_ = impl_;
    object.name_ = resolved[i];
    object.meta_ = slots[i]->meta;
    object.data_ = slots[i]->data;
    out.push_back(std::move(object));
  }
  return out;
}

absl::StatusOr<std::vector<absl::Status>> Client::SealBatch(std::span<WritableObject> objects) {
  std::vector<absl::Status> out(objects.size());
  std::vector<ObjectName> names;   // of the objects still writable
  std::vector<size_t> index;       // their positions in `objects`
  for (size_t i = 0; i < objects.size(); ++i) {
    if (objects[i].impl_ == nullptr) {
      out[i] = NotWritable("seal", objects[i].name_);
      continue;
    }
    names.push_back(objects[i].name_);
    index.push_back(i);
  }
  if (names.empty()) return out;
  FERRY_ASSIGN_OR_RETURN(names, BatchNames(names, default_namespace()));
  FERRY_ASSIGN_OR_RETURN(std::vector<absl::Status> sealed, impl_->SealBatch(names));
  for (size_t j = 0; j < index.size(); ++j) {
    WritableObject& object = objects[index[j]];
    out[index[j]] = sealed[j];
    if (!sealed[j].ok()) continue;   // stays unsealed: Abort it, or let the destructor do so
    object.impl_.reset();
    object.meta_ = ObjectMeta();
    object.data_ = nullptr;
  }
  return out;
}

absl::StatusOr<std::vector<absl::Status>> Client::PutBatch(std::span<const PutEntry> entries) {
  std::vector<ObjectName> names;
  std::vector<ObjectMeta> metas;
  names.reserve(entries.size());
  metas.reserve(entries.size());
  for (const PutEntry& e : entries) {
    names.push_back(e.name);
    ObjectMeta meta;
    meta.size = e.bytes.size();
    meta.dtype = e.dtype;
    meta.checksum = e.checksum;
    metas.push_back(meta);
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<absl::StatusOr<WritableObject>> created, CreateBatch(names, metas));
  std::vector<absl::Status> out(entries.size());
  std::vector<WritableObject> writable;   // the created ones, in order; aborted if not sealed
  std::vector<size_t> index;
  for (size_t i = 0; i < created.size(); ++i) {
    if (!created[i].ok()) {
      out[i] = created[i].status();
      continue;
    }
    if (!entries[i].bytes.empty()) std::memcpy(created[i]->data(), entries[i].bytes.data(), entries[i].bytes.size());
    writable.push_back(*std::move(created[i]));
    index.push_back(i);
  }
  if (writable.empty()) return out;
  FERRY_ASSIGN_OR_RETURN(std::vector<absl::Status> sealed, SealBatch(writable));
  for (size_t j = 0; j < index.size(); ++j) out[index[j]] = sealed[j];
  return out;
}

absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> Client::GetBatch(std::span<const ObjectName> names,
                                                                         absl::Duration timeout) {
  FERRY_ASSIGN_OR_RETURN(std::vector<ObjectName> resolved, BatchNames(names, default_namespace()));
  FERRY_ASSIGN_OR_RETURN(std::vector<absl::StatusOr<ArenaSlot>> slots, impl_->GetBatch(resolved, timeout));
  std::vector<absl::StatusOr<ObjectView>> out;
  out.reserve(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].ok()) {
      out.push_back(ObjectView(impl_, resolved[i], *slots[i]));
    } else {
      out.push_back(slots[i].status());
    }
  }
  return out;
}

absl::StatusOr<std::vector<absl::Status>> Client::DeleteBatch(std::span<const ObjectName> names) {
  FERRY_ASSIGN_OR_RETURN(std::vector<ObjectName> resolved, BatchNames(names, default_namespace()));
  return impl_->DeleteBatch(resolved);
}

absl::StatusOr<ReduceResult> Client::Reduce(std::span<const ObjectName> inputs, const ObjectName& result,
                                            ReduceOp op, DType dtype, uint32_t num_objects, absl::Duration timeout) {
  return RunReduce(inputs, result, op, dtype, ReduceOptions{num_objects, timeout, ""}, /*all=*/false);
}

absl::StatusOr<ReduceResult> Client::AllReduce(std::span<const ObjectName> inputs, const ObjectName& result,
                                               ReduceOp op, DType dtype, uint32_t num_objects,
                                               absl::Duration timeout) {
  return RunReduce(inputs, result, op, dtype, ReduceOptions{num_objects, timeout, ""}, /*all=*/true);
}

absl::StatusOr<ReduceResult> Client::Reduce(std::span<const ObjectName> inputs, const ObjectName& result,
                                            ReduceOp op, DType dtype, const ReduceOptions& options) {
  return RunReduce(inputs, result, op, dtype, options, /*all=*/false);
}

absl::StatusOr<ReduceResult> Client::AllReduce(std::span<const ObjectName> inputs, const ObjectName& result,
                                               ReduceOp op, DType dtype, const ReduceOptions& options) {
  return RunReduce(inputs, result, op, dtype, options, /*all=*/true);
}

absl::StatusOr<ReduceResult> Client::RunReduce(std::span<const ObjectName> inputs, const ObjectName& result,
                                               ReduceOp op, DType dtype, const ReduceOptions& options, bool all) {
  // Names are checked here; the rest (sizes, duplicates, op and dtype, the root) by ferryd and
  // the coordinator.
  std::vector<ObjectName> resolved(inputs.begin(), inputs.end());
  ObjectName out = result;
  FERRY_RETURN_IF_ERROR(ResolveCollectiveNames(default_namespace(), out, resolved));
  return impl_->Reduce(resolved, out, op, dtype, options.num_objects, options.timeout, all, options.root);
}

const char* GroupOpName(GroupOp op) {
  switch (op) {
    case GroupOp::kAllReduce: return "allreduce";
    case GroupOp::kReduceScatter: return "reduce-scatter";
    case GroupOp::kAllGather: return "allgather";
    case GroupOp::kBroadcast: return "broadcast";
    case GroupOp::kReduce: return "reduce";
  }
  return "?";
}

std::optional<GroupOp> GroupOpFromName(std::string_view name) {
  for (GroupOp op : {GroupOp::kAllReduce, GroupOp::kReduceScatter, GroupOp::kAllGather, GroupOp::kBroadcast,
                     GroupOp::kReduce}) {
    if (absl::EqualsIgnoreCase(absl::string_view(name.data(), name.size()), GroupOpName(op))) return op;
  }
  return std::nullopt;
}

absl::StatusOr<GroupInfo> Client::CreateGroup(const std::string& name, std::span<const std::string> nodes) {
  proto::GroupRequest req;
  req.mutable_create()->set_name(name);
  for (const std::string& n : nodes) req.mutable_create()->add_node_names(n);
  FERRY_ASSIGN_OR_RETURN(proto::GroupReply reply, impl_->Group(req, absl::ZeroDuration(), "CreateGroup", name));
  return sdk::GroupFromProto(reply.create());
}

absl::StatusOr<GroupInfo> Client::CreateGroupFromLease(const std::string& name, uint64_t lease_id,
                                                       const std::string& holder) {
  if (lease_id == 0) return absl::InvalidArgumentError("CreateGroupFromLease: lease id 0 (no lease)");
  proto::GroupRequest req;
  req.mutable_create()->set_name(name);
  req.mutable_create()->set_lease_id(lease_id);
  req.mutable_create()->set_lease_holder(holder);
  FERRY_ASSIGN_OR_RETURN(proto::GroupReply reply,
                         impl_->Group(req, absl::ZeroDuration(), "CreateGroup", absl::StrCat(name, " from lease ", lease_id)));
  return sdk::GroupFromProto(reply.create());
}

absl::StatusOr<GroupInfo> Client::DeleteGroup(const std::string& name) {
  proto::GroupRequest req;
  req.mutable_remove()->set_name(name);
  FERRY_ASSIGN_OR_RETURN(proto::GroupReply reply, impl_->Group(req, absl::ZeroDuration(), "DeleteGroup", name));
  return sdk::GroupFromProto(reply.remove());
}

absl::StatusOr<std::vector<GroupInfo>> Client::ListGroups() {
  proto::GroupRequest req;
  req.mutable_list();
  FERRY_ASSIGN_OR_RETURN(proto::GroupReply reply, impl_->Group(req, absl::ZeroDuration(), "ListGroups", ""));
  std::vector<GroupInfo> out;
  for (const proto::GroupInfo& g : reply.list().groups()) out.push_back(sdk::GroupFromProto(g));
  return out;
}

absl::StatusOr<GroupResult> Client::GroupCollective(const std::string& group, GroupOp op,
                                                    std::span<const ObjectName> inputs, const ObjectName& result,
                                                    const GroupCollectiveOptions& options) {
  // Names are checked here; the rest (counts, sizes, op and dtype) by the coordinator.
  std::vector<ObjectName> resolved(inputs.begin(), inputs.end());
  ObjectName out = result;
  FERRY_RETURN_IF_ERROR(ResolveCollectiveNames(default_namespace(), out, resolved));
  proto::GroupRequest req;
  proto::GroupCollectiveRequest* c = req.mutable_collective();
  c->set_group(group);
  c->set_kind(static_cast<proto::GroupCollectiveKind>(op));
  for (const ObjectName& n : resolved) sdk::NameToProto(n, c->add_inputs());
  sdk::NameToProto(out, c->mutable_result());
  c->set_op(static_cast<proto::ReduceOp>(options.op));
  c->set_dtype(static_cast<proto::DType>(options.dtype));
  c->set_root(options.root);
  const uint32_t timeout_ms = sdk::TimeoutToMs(options.timeout);
  c->set_timeout_ms(timeout_ms);
  absl::StatusOr<proto::GroupReply> reply = impl_->Group(req, absl::Milliseconds(timeout_ms),
                                                         absl::StrCat("group ", GroupOpName(op)),
                                                         absl::StrCat(group, " -> ", out.key));
  if (reply.ok()) return sdk::GroupResultFromProto(reply->collective());
  // A member died (UNAVAILABLE naming it; or ABORTED: a member's pull from it failed first)
  // or had died (the group is revoked): the caller may take the surviving inputs to a dynamic
  // tree once the coordinator has revoked the group (so the dead member is known dead).
  const absl::StatusCode code = reply.status().code();
  const bool member_lost = code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kAborted ||
                           (code == absl::StatusCode::kFailedPrecondition &&
                            absl::StrContains(reply.status().message(), "revoked"));
  if (!options.dynamic_fallback || op != GroupOp::kAllReduce || !member_lost) return reply.status();
  std::optional<GroupInfo> g;
  const absl::Time give_up = absl::Now() + std::min(options.timeout, absl::Seconds(15));
  for (int tries = 0; tries < 1000 && absl::Now() < give_up; ++tries) {
    FERRY_ASSIGN_OR_RETURN(std::vector<GroupInfo> groups, ListGroups());
    for (GroupInfo& each : groups) {
      if (each.name == group && each.revoked) g = std::move(each);
    }
    if (g.has_value()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  if (!g.has_value()) return reply.status();   // no member died: nothing to fall back from
  FERRY_ASSIGN_OR_RETURN(NodeStatus status, Status());
  std::vector<ObjectName> alive_inputs;
  std::vector<uint32_t> used;
  for (size_t r = 0; r < g->members.size() && r < resolved.size(); ++r) {
    for (const NodeInfo& n : status.cluster) {
      if (n.id == g->members[r].node_id && n.alive) {
        alive_inputs.push_back(resolved[r]);
        used.push_back(static_cast<uint32_t>(r));
      }
    }
  }
  if (alive_inputs.empty()) {
    return Annotate(reply.status(), "no input of the group's members is left for a dynamic allreduce");
  }
  absl::StatusOr<ReduceResult> dyn = AllReduce(alive_inputs, out, options.op, options.dtype, 0, options.timeout);
  if (!dyn.ok()) {
    return Annotate(dyn.status(), absl::StrCat("the dynamic allreduce after the group failed (", reply.status().message(), ")"));
  }
  GroupResult fell;
  fell.result = dyn->result;
  fell.meta = dyn->meta;
  for (const BroadcastResult::Target& t : dyn->copies) {
    if (t.ok) fell.nodes.push_back(t.node);
  }
  fell.seconds = dyn->seconds;
  fell.dynamic = true;
  for (uint32_t i : dyn->used) fell.used.push_back(used[i]);
  return fell;
}

absl::StatusOr<NodeStatus> Client::Status() { return impl_->Status(); }

}  // namespace ferry
