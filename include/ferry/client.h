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
//   // Async: start several Gets at once and use each object as it lands.
//   std::vector<ferry::GetHandle> gets = (*client)->GetManyAsync(keys, absl::Seconds(30));
//   std::vector<ferry::GetHandle*> pending = ...pointers into gets...;
//   while (!pending.empty()) {
//     absl::StatusOr<size_t> i = ferry::WaitAny(pending, absl::Seconds(60));
//     if (!i.ok()) break;                                 // DEADLINE_EXCEEDED: none finished
//     absl::StatusOr<ferry::ObjectView> v = pending[*i]->Wait(absl::ZeroDuration());
//     pending.erase(pending.begin() + *i);
//   }
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
class PendingGet;
struct ArenaSlot;

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
  friend class GetHandle;
  ObjectView(std::shared_ptr<ClientImpl> impl, ObjectName name, const ArenaSlot& slot);
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

// A Get running in the background, returned by Client::GetAsync. Its RPC runs on gRPC's
// callback API: no thread per Get. Movable, not copyable.
//
// Lifetime: destroying (or move-assigning over) a handle whose Get has not finished cancels
// it and waits for its RPC to end; a finished Get whose view was never taken has its pin
// dropped. Destroying the Client cancels every Get still running on it (their handles then
// report CANCELLED); a handle, like a view, may outlive its Client.
//
// Thread-safety: Ready, Wait and Cancel may be called from several threads at once; at most
// one caller receives the view.
class GetHandle {
 public:
  GetHandle() = default;
  GetHandle(GetHandle&& other) noexcept;
  GetHandle& operator=(GetHandle&& other) noexcept;
  GetHandle(const GetHandle&) = delete;
  GetHandle& operator=(const GetHandle&) = delete;
  ~GetHandle();

  // False for a default-constructed or moved-from handle.
  bool valid() const { return pending_ != nullptr; }
  // The object this Get is for (empty name if !valid()).
  const ObjectName& name() const;

  // True once the Get has finished (Wait would return at once). Does not block.
  bool Ready() const;

  // Waits up to `timeout` for the Get to finish and returns its outcome: the pinned view, or
  // the error the blocking Client::Get would return (INVALID_ARGUMENT for a bad name,
  // DEADLINE_EXCEEDED when the Get's own timeout passed, ...). If the Get has not finished
  // within `timeout`, DEADLINE_EXCEEDED saying so; the Get keeps running and Wait may be
  // called again. CANCELLED if Cancel was called before, even if the object had arrived (its
  // pin is dropped). The view is handed out once: a later Wait returns FAILED_PRECONDITION.
  // FAILED_PRECONDITION on an invalid handle.
  absl::StatusOr<ObjectView> Wait(absl::Duration timeout = absl::InfiniteDuration());

  // Asks gRPC to cancel the Get's RPC (ClientContext::TryCancel) and returns without
  // waiting; the handle then finishes promptly, and Wait returns CANCELLED from now on, also
  // when the Get had already finished (a view not yet taken is dropped with its pin). A no-op
  // on an invalid handle or once the view was taken. ferryd is not told: its own wait for the
  // object runs on until the Get's timeout (see docs/architecture.md, "libferry ... async Get").
  void Cancel();

 private:
  friend class Client;
  friend absl::StatusOr<size_t> WaitAny(std::span<GetHandle* const> handles,
                                        absl::Duration timeout);
  void Finish();  // cancels if unfinished, waits, drops an untaken pin; empties the handle

  std::shared_ptr<ClientImpl> impl_;
  std::shared_ptr<PendingGet> pending_;
};

// Waits up to `timeout` until at least one of `handles` is Ready() and returns the index of
// one that is (the lowest such index). Handles already finished (even those whose view was
// taken) count as ready, so a caller that consumes completions removes each handle it is
// done with. DEADLINE_EXCEEDED if none finished in time; INVALID_ARGUMENT for an empty list,
// a null or an invalid handle. Blocks; thread-safe.
absl::StatusOr<size_t> WaitAny(std::span<GetHandle* const> handles, absl::Duration timeout);
absl::StatusOr<size_t> WaitAny(std::span<GetHandle> handles, absl::Duration timeout);

struct ConnectOptions {
  // Default namespace for calls that take only a key.
  std::string ns = "default";
  // Deadline for each control RPC to ferryd (not for Get's own wait).
  absl::Duration rpc_timeout = absl::Seconds(30);
  // Get and Release of an object already sealed on this node skip gRPC: one small request
  // and reply on the arena connection the client holds anyway (docs/protocol.md "Local
  // requests"). Anything else, and every error, takes the RPC as before. false: always RPC.
  bool local_fast_path = true;
};

class Client {
 public:
  // Connects to the ferryd serving `socket_path` and maps its arena. UNAVAILABLE if no ferryd
  // answers there. Blocks for at most a few seconds.
  static absl::StatusOr<std::unique_ptr<Client>> Connect(const std::string& socket_path,
                                                         ConnectOptions options = {});
  // Cancels every GetAsync still running on this client and waits for their RPCs to end.
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

  // Starts a Get and returns at once; the handle delivers what Get would have returned.
  // Argument errors (INVALID_ARGUMENT) are delivered through the handle too. Each running Get
  // holds one of ferryd's RPC threads until it finishes.
  GetHandle GetAsync(const ObjectName& name, absl::Duration timeout);
  GetHandle GetAsync(std::string_view key, absl::Duration timeout);
  // One GetAsync per name, in order: the application consumes the objects as they land
  // (WaitAny).
  std::vector<GetHandle> GetManyAsync(std::span<const ObjectName> names, absl::Duration timeout);
  std::vector<GetHandle> GetManyAsync(const std::vector<std::string>& keys,
                                      absl::Duration timeout);

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

  // Broadcasts a batch of objects (a model version: distinct keys of one namespace, at most
  // 100,000) to the listed nodes as one operation: one plan, small objects packed together,
  // every object pipelined along the same tree. Returns when every target holds every object
  // or failed, or after `timeout`; an entry that fails (no such object, deleted meanwhile)
  // fails alone and is reported in `errors`. INVALID_ARGUMENT for an empty batch, duplicate
  // names, mixed namespaces or a bad name (naming the entry).
  absl::StatusOr<BatchBroadcastResult> BroadcastBatch(std::span<const ObjectName> names,
                                                      const std::vector<std::string>& nodes,
                                                      absl::Duration timeout);

  // Batches: a model version in one call. A batch names distinct objects of one namespace
  // (an empty ObjectName::ns means the client's default), at most 100,000. It is refused as a
  // whole, with nothing done, for a bad or repeated name, mixed namespaces or bad metadata
  // (INVALID_ARGUMENT naming the entry) or, for CreateBatch / PutBatch, when its objects add
  // up to more than the arena (RESOURCE_EXHAUSTED). Otherwise every entry has its own
  // outcome, in order, and one entry's failure (a name taken, an unknown object) does not stop
  // the others. Each call is one RPC to ferryd and one coordinator call per 8,192 entries, so
  // an entry costs microseconds, not a round trip.
  //
  // CreateBatch: Create of each names[i] with metas[i] (the spans have one length).
  absl::StatusOr<std::vector<absl::StatusOr<WritableObject>>> CreateBatch(std::span<const ObjectName> names,
                                                                          std::span<const ObjectMeta> metas);
  // Seals every object (from Create or CreateBatch of this client, one namespace); a sealed
  // one becomes empty. An empty WritableObject fails alone (FAILED_PRECONDITION).
  absl::StatusOr<std::vector<absl::Status>> SealBatch(std::span<WritableObject> objects);
  // CreateBatch + copy + SealBatch. An entry whose Create failed is not sealed; the others are.
  struct PutEntry {
    ObjectName name;
    std::span<const uint8_t> bytes;
    DType dtype = DType::kBytes;
    bool checksum = false;   // as ObjectMeta::checksum
  };
  absl::StatusOr<std::vector<absl::Status>> PutBatch(std::span<const PutEntry> entries);
  // A pinned view of each object. Those not held here are pulled as one batch (small objects
  // packed, large ones pipelined: what BroadcastBatch does, to this node only); each waits up
  // to `timeout` to be created, as Get does.
  absl::StatusOr<std::vector<absl::StatusOr<ObjectView>>> GetBatch(std::span<const ObjectName> names,
                                                                   absl::Duration timeout);
  // Deletes every object on every node, as one coordinator operation per 8,192 entries.
  // NOT_FOUND for an entry that does not exist.
  absl::StatusOr<std::vector<absl::Status>> DeleteBatch(std::span<const ObjectName> names);
  // Combines `num_objects` (0: all) of `inputs` with `op` into a new object `result` on a
  // dynamic tree: inputs take places in the order they are created (published) anywhere in the
  // cluster, so they need not exist yet; with num_objects < inputs the first ready are used
  // (ReduceResult::used says which). Every input must hold `dtype` elements, all of one size,
  // one input per node, all in result's namespace (empty: the client's default). Blocks until
  // the result is sealed on its root node, or `timeout`. Errors name the problem:
  // INVALID_ARGUMENT (empty or duplicate inputs, num_objects out of range, BYTES or an unknown
  // op, an input whose size or dtype does not match), ALREADY_EXISTS (the result exists),
  // DATA_LOSS naming the inputs lost with their nodes, DEADLINE_EXCEEDED naming the inputs never
  // created. A result is never silently wrong.
  absl::StatusOr<ReduceResult> Reduce(std::span<const ObjectName> inputs, const ObjectName& result, ReduceOp op,
                                      DType dtype, uint32_t num_objects, absl::Duration timeout);
  // Reduce, then every node whose input was ready receives a copy of the result (`copies`).
  // Today the copies start once the result is complete (reduce, then broadcast).
  absl::StatusOr<ReduceResult> AllReduce(std::span<const ObjectName> inputs, const ObjectName& result, ReduceOp op,
                                         DType dtype, uint32_t num_objects, absl::Duration timeout);
  struct ReduceOptions {
    uint32_t num_objects = 0;                  // 0: every input
    absl::Duration timeout = absl::Seconds(60);
    // The node (name or decimal id) that builds the result, e.g. a parameter server or a node
    // chosen by placement (PlacementLease::bundles); empty: the planner chooses. It must hold
    // one of the inputs, which is then always used; the root waits for it within the timeout,
    // and if the node dies first the planner chooses. NOT_FOUND for an unknown node,
    // INVALID_ARGUMENT once every input is ready and none is on it.
    std::string root;
  };
  absl::StatusOr<ReduceResult> Reduce(std::span<const ObjectName> inputs, const ObjectName& result, ReduceOp op,
                                      DType dtype, const ReduceOptions& options);
  absl::StatusOr<ReduceResult> AllReduce(std::span<const ObjectName> inputs, const ObjectName& result, ReduceOp op,
                                         DType dtype, const ReduceOptions& options);

  // ---- Static groups (docs/protocol.md "Groups") ----
  // Fixes `nodes` (names of live nodes, 2..1024, distinct) as group `name` (1-64 characters
  // of [A-Za-z0-9_.-], not in use) with ranks: members on one host adjacent, hosts in order of
  // their first member given, and with "rack" labels the hosts of a rack adjacent (so ranks may
  // differ from the order given: GroupInfo::members is rank order). INVALID_ARGUMENT (bad name, duplicates, too few), NOT_FOUND (an
  // unknown node), FAILED_PRECONDITION (a dead one), ALREADY_EXISTS (the name is in use).
  absl::StatusOr<GroupInfo> CreateGroup(const std::string& name, std::span<const std::string> nodes);
  // The group of a gang grant: the members are the distinct nodes of placement lease
  // `lease_id`'s bundles (PlacementLease::bundles, held by `holder`) in bundle order, grouped
  // by host as above; the group is revoked when the lease ends (released, expired, or lost with
  // a node). NOT_FOUND (the lease is not held; why, if it was lost), PERMISSION_DENIED (another
  // holder's lease), INVALID_ARGUMENT (its bundles are on fewer than two nodes), and the errors
  // of CreateGroup.
  absl::StatusOr<GroupInfo> CreateGroupFromLease(const std::string& name, uint64_t lease_id, const std::string& holder);
  // Forgets the group (revoked or not); NOT_FOUND if there is none. Returns it as it was.
  absl::StatusOr<GroupInfo> DeleteGroup(const std::string& name);
  absl::StatusOr<std::vector<GroupInfo>> ListGroups();
  struct GroupCollectiveOptions {
    ReduceOp op = ReduceOp::kSum;     // reducing kinds
    DType dtype = DType::kF32;        // reducing kinds: the inputs' dtype
    uint32_t root = 0;                // broadcast, reduce: the root's rank
    absl::Duration timeout = absl::Seconds(60);
    // AllReduce only: if the group is revoked, or a member dies during the call, retry once as
    // a dynamic AllReduce of the inputs whose members are alive (GroupResult::dynamic, used),
    // after waiting (up to 15 s) for the coordinator to revoke the group.
    bool dynamic_fallback = false;
  };
  // Runs collective `op` on group `group`: inputs[r] (one per rank, in rank order; broadcast
  // needs only the root's and takes a list of one) must be sealed on member r when the call
  // starts, all of one size and dtype, in result's namespace (empty: the client's default);
  // the result is created under `result` on the ranks that get one (GroupOp) as an ordinary
  // object. Blocks until every member is done. Errors name the problem: INVALID_ARGUMENT
  // (input count, sizes or dtypes that differ, an unknown op, BYTES for a reducing kind, a
  // reduce-scatter size that is not a multiple of ranks x element size, root out of range),
  // NOT_FOUND (no such group), FAILED_PRECONDITION (the group is revoked; an input not sealed
  // on its member), ALREADY_EXISTS (the result exists), UNAVAILABLE (a member died: the
  // message names it, and the group is revoked), ABORTED (a member failed), DEADLINE_EXCEEDED.
  // A failed collective leaves no result on any node.
  absl::StatusOr<GroupResult> GroupCollective(const std::string& group, GroupOp op, std::span<const ObjectName> inputs,
                                              const ObjectName& result, const GroupCollectiveOptions& options);
  absl::StatusOr<GroupResult> GroupCollective(const std::string& group, GroupOp op, std::span<const ObjectName> inputs,
                                              const ObjectName& result) {
    return GroupCollective(group, op, inputs, result, GroupCollectiveOptions{});
  }

  // This node's and the cluster's status.
  absl::StatusOr<NodeStatus> Status();

  const std::string& default_namespace() const;

 private:
  explicit Client(std::shared_ptr<ClientImpl> impl);
  absl::StatusOr<ReduceResult> RunReduce(std::span<const ObjectName> inputs, const ObjectName& result, ReduceOp op,
                                         DType dtype, const ReduceOptions& options, bool all);
  std::shared_ptr<ClientImpl> impl_;
};

}  // namespace ferry
