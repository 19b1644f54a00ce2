// ferry::Client, ObjectView and WritableObject: argument checks and object lifetimes on top
// of ClientImpl's RPCs.
#include "ferry/client.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "common/status_macros.h"
#include "sdk/client_impl.h"
#include "sdk/convert.h"

namespace ferry {
namespace {

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

// ---- Client -----------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const std::string& socket_path,
                                                        ConnectOptions options) {
  FERRY_ASSIGN_OR_RETURN(std::shared_ptr<ClientImpl> impl,
                         ClientImpl::Connect(socket_path, options));
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Client::Client(std::shared_ptr<ClientImpl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

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
  ObjectView view;
  view.impl_ = impl_;
  view.name_ = name;
  view.meta_ = slot.meta;
  view.info_ = slot.info;
  view.data_ = slot.data;
  return view;
}

absl::StatusOr<ObjectView> Client::Get(std::string_view key, absl::Duration timeout) {
  return Get(DefaultName(default_namespace(), key), timeout);
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

absl::StatusOr<NodeStatus> Client::Status() { return impl_->Status(); }

}  // namespace ferry
