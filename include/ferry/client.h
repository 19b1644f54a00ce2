// libferry: the client SDK. An application links libferry and talks to the ferryd on its
// node over a unix socket; objects live in ferryd's arena, which the client maps, so
// Create/Seal and Get of local objects move no bytes.
//
//   auto client = ferry::Client::Connect("/run/ferry/ferryd.sock");
//   if (!client.ok()) { ... }
//   FERRY_CHECK_OK((*client)->Put("weights/v7", bytes));          // anywhere in the cluster
//   auto view = (*client)->Get("weights/v7", absl::Seconds(30));   // on any node
//   Use(view->data());                                              // pinned until view dies
//
// Thread-safety: a Client may be used from several threads at once. Views are independent
// objects; destroy them before the Client.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/object.h"

namespace ferry {

class ClientImpl;

// A pinned, read-only view of a sealed object in the local arena. While the view lives the
// object cannot be evicted or reused. Movable, not copyable. Release() (or destruction)
// drops the pin.
class ObjectView {
 public:
  ObjectView() = default;
  ObjectView(ObjectView&& other) noexcept;
  ObjectView& operator=(ObjectView&& other) noexcept;
  ObjectView(const ObjectView&) = delete;
  ObjectView& operator=(const ObjectView&) = delete;
  ~ObjectView();

  const uint8_t* data() const { return data_; }
  size_t size() const { return meta_.size; }
  std::span<const uint8_t> bytes() const { return {data_, meta_.size}; }
  const ObjectMeta& meta() const { return meta_; }
  const ObjectName& name() const { return name_; }
  // Set when Get moved the object from another node.
  const GetInfo& info() const { return info_; }
  bool valid() const { return impl_ != nullptr; }

  // Drops the pin now; the view becomes empty. Errors are reported, the view is emptied anyway.
  // OK (and a no-op) on an empty view.
  absl::Status Release();

 private:
  friend class Client;
  std::shared_ptr<ClientImpl> impl_;
  ObjectName name_;
  ObjectMeta meta_;
  GetInfo info_;
  const uint8_t* data_ = nullptr;
};

// An object being written: [data(), data()+size()) in the arena, writable until Seal().
// Destroying an unsealed WritableObject aborts it (the space is reclaimed).
class WritableObject {
 public:
  WritableObject() = default;
  WritableObject(WritableObject&& other) noexcept;
  WritableObject& operator=(WritableObject&& other) noexcept;
  WritableObject(const WritableObject&) = delete;
  WritableObject& operator=(const WritableObject&) = delete;
  ~WritableObject();

  uint8_t* data() { return data_; }
  size_t size() const { return meta_.size; }
  std::span<uint8_t> bytes() { return {data_, meta_.size}; }
  const ObjectName& name() const { return name_; }

  // Copies `bytes` to [offset, offset+bytes.size()) of the object. OUT_OF_RANGE (naming the
  // key, offset and size) if that runs past the object's end; FAILED_PRECONDITION if sealed.
  // Writes to disjoint ranges may run on several threads at once; Seal/Abort may not race
  // with them.
  absl::Status Write(uint64_t offset, std::span<const uint8_t> bytes);

  // Publishes the object to the cluster. After Seal the object is immutable and this
  // WritableObject is empty. FAILED_PRECONDITION if already sealed or aborted. If Seal fails
  // the object stays unsealed (Abort it, or let the destructor do so).
  absl::Status Seal();
  // Discards the object; this WritableObject becomes empty even if the RPC fails (ferryd
  // reclaims the object when the client's session ends anyway).
  absl::Status Abort();

 private:
  friend class Client;
  std::shared_ptr<ClientImpl> impl_;
  ObjectName name_;
  ObjectMeta meta_;
  uint8_t* data_ = nullptr;
};

struct ConnectOptions {
  // Default namespace for calls that take only a key.
  std::string ns = "default";
  // Deadline for each control RPC to ferryd (not for Get's own wait).
  absl::Duration rpc_timeout = absl::Seconds(30);
};

class Client {
 public:
  // Connects to the ferryd serving `socket_path` and maps its arena. UNAVAILABLE if no ferryd
  // answers there. Blocks for at most a few seconds.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& socket_path,
                                                         ConnectOptions options = {});
  ~Client();

  // Allocates an object of meta.size bytes for zero-copy writing. ALREADY_EXISTS if the
  // name is taken on this node, RESOURCE_EXHAUSTED if the arena cannot hold it (after
  // evicting every unpinned object), INVALID_ARGUMENT for a bad name or metadata.
  absl::StatusOr<WritableObject> Create(const ObjectName& name, const ObjectMeta& meta);
  absl::StatusOr<WritableObject> Create(std::string_view key, uint64_t size);

  // Create + copy + Seal.
  absl::Status Put(const ObjectName& name, std::span<const uint8_t> bytes,
                   DType dtype = DType::kBytes);
  absl::Status Put(std::string_view key, std::span<const uint8_t> bytes);

  // Returns a pinned view of the object, pulling it from another node if it is not here.
  // Waits up to `timeout` for the object to be created anywhere: DEADLINE_EXCEEDED naming
  // the key after that; UNAVAILABLE / DATA_LOSS naming the lost holder if every copy died.
  absl::StatusOr<ObjectView> Get(const ObjectName& name, absl::Duration timeout);
  absl::StatusOr<ObjectView> Get(std::string_view key, absl::Duration timeout);

  // Deletes the object on every node. NOT_FOUND if it does not exist.
  absl::Status Delete(const ObjectName& name);
  absl::Status Delete(std::string_view key);

  // Objects in the cluster directory, in namespace `ns` (empty: the client's default),
  // whose key starts with `prefix`.
  absl::StatusOr<std::vector<ObjectInfo>> List(std::string_view ns = "",
                                               std::string_view prefix = "",
                                               uint32_t limit = 0);

  // Makes every listed node (names or decimal ids; empty: all live nodes) hold a complete
  // copy; returns when all have one or failed, or after `timeout`.
  absl::StatusOr<BroadcastResult> Broadcast(const ObjectName& name,
                                            const std::vector<std::string>& nodes,
                                            absl::Duration timeout);

  // This node's and the cluster's status.
  absl::StatusOr<NodeStatus> Status();

  const std::string& default_namespace() const;

 private:
  explicit Client(std::shared_ptr<ClientImpl> impl);
  std::shared_ptr<ClientImpl> impl_;
};

}  // namespace ferry
