// ClientImpl: the shared state behind a ferry::Client and every view / writable object it
// hands out: the arena session (its socket and the mapped arena) and the gRPC stub. Each
// method is one RPC to ferryd with the session id and a deadline. Internal to libferry.
//
// Lifetime: held by shared_ptr from the Client and from every ObjectView / WritableObject,
// so the arena mapping outlives the last pointer into it. Destroying the last reference
// closes the arena connection, which ends the session in ferryd (unsealed objects are
// reclaimed, pins dropped).
//
// Thread-safety: every method may be called from any thread at once; the fields are set
// at construction and never change (the gRPC stub is thread-safe; the GetRegistry locks).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/synchronization/mutex.h"
#include "shm/arena.h"
#include "shm/local_channel.h"
#include "ferry/client.h"
#include "ferry/object.h"
#include "proto/sidecar.grpc.pb.h"
#include "sdk/async_get.h"

namespace ferry {

// Where a created or pinned object lies in the mapped arena.
struct ArenaSlot {
  uint8_t* data = nullptr;
  ObjectMeta meta;
  GetInfo info;
};

class ClientImpl {
 public:
  // Receives the arena and session over "<socket_path>.arena", maps the arena and opens the
  // gRPC channel. UNAVAILABLE (naming the socket) if no ferryd answers.
  static absl::StatusOr<std::shared_ptr<ClientImpl>> Connect(const std::string& socket_path,
                                                             const ConnectOptions& options);
  ~ClientImpl();
  ClientImpl(const ClientImpl&) = delete;
  ClientImpl& operator=(const ClientImpl&) = delete;

  const std::string& default_namespace() const { return options_.ns; }

  // Create RPC; `meta` must already be normalized. INTERNAL (after aborting the object) if
  // ferryd's offset does not lie inside the mapped arena.
  absl::StatusOr<ArenaSlot> Create(const ObjectName& name, const ObjectMeta& meta);
  absl::Status Seal(const ObjectName& name);
  absl::Status Abort(const ObjectName& name);
  // Get RPC; the gRPC deadline is `timeout` + rpc_timeout so ferryd's own DEADLINE_EXCEEDED
  // (which names the key) arrives first.
  absl::StatusOr<ArenaSlot> Get(const ObjectName& name, absl::Duration timeout);
  // The same Get RPC on gRPC's callback API; returns at once. The returned PendingGet
  // finishes when the RPC ends (an already finished, CANCELLED one if CloseGets was called).
  // `name` must be valid.
  std::shared_ptr<PendingGet> StartGet(const ObjectName& name, absl::Duration timeout);
  // Turns the outcome of a finished StartGet into what Get returns. Takes the outcome (a
  // second call is FAILED_PRECONDITION). A pin ferryd took for a cancelled Get is dropped.
  // Blocks only to drop such a pin.
  absl::StatusOr<ArenaSlot> FinishGet(PendingGet& get);
  // Cancels every Get started by StartGet and waits until their callbacks have returned;
  // later StartGets finish at once with CANCELLED.
  void CloseGets();
  absl::Status Release(const ObjectName& name);
  absl::Status Delete(const ObjectName& name);
  absl::StatusOr<std::vector<ObjectInfo>> List(const std::string& ns, const std::string& prefix,
                                               uint32_t limit);
  absl::StatusOr<BatchBroadcastResult> BroadcastBatch(const std::vector<ObjectName>& names,
                                                      const std::vector<std::string>& nodes, absl::Duration timeout);
  absl::StatusOr<ReduceResult> Reduce(const std::vector<ObjectName>& inputs, const ObjectName& result, ReduceOp op,
                                      DType dtype, uint32_t num_objects, absl::Duration timeout, bool all, const std::string& root);
  absl::StatusOr<BroadcastResult> Broadcast(const ObjectName& name,
                                            const std::vector<std::string>& nodes,
                                            absl::Duration timeout);
  absl::StatusOr<NodeStatus> Status();
  // The Group RPC through ferryd; `timeout` bounds a collective (admin verbs: the RPC timeout).
  absl::StatusOr<proto::GroupReply> Group(const proto::GroupRequest& req, absl::Duration timeout, absl::string_view op,
                                          absl::string_view what);

  // Batch RPCs (names already validated as one batch, metas normalized). The outer status is
  // the batch's; inside, one outcome per entry. A created slot whose offset lies outside the
  // arena is aborted and its entry fails INTERNAL; a pinned one is released likewise.
  absl::StatusOr<std::vector<absl::StatusOr<ArenaSlot>>> CreateBatch(const std::vector<ObjectName>& names,
                                                                     const std::vector<ObjectMeta>& metas);
  absl::StatusOr<std::vector<absl::Status>> SealBatch(const std::vector<ObjectName>& names);
  absl::StatusOr<std::vector<absl::StatusOr<ArenaSlot>>> GetBatch(const std::vector<ObjectName>& names,
                                                                  absl::Duration timeout);
  absl::StatusOr<std::vector<absl::Status>> DeleteBatch(const std::vector<ObjectName>& names);

 private:
  ClientImpl(std::string socket_path, ConnectOptions options, uint64_t session, uint64_t node_id,
             int conn, std::shared_ptr<shm::Arena> arena,
             std::shared_ptr<grpc::Channel> channel);

  // Runs one unary RPC with a deadline of now + extra + rpc_timeout. ferryd's own errors
  // pass through (they name the object); a broken channel or a missed deadline becomes
  // UNAVAILABLE / DEADLINE_EXCEEDED naming `op`, `what` and the socket.
  template <typename Request, typename Reply>
  absl::Status Call(grpc::Status (proto::Sidecar::Stub::*method)(grpc::ClientContext*,
                                                                 const Request&, Reply*),
                    const Request& request, Reply* reply, absl::Duration extra,
                    absl::string_view op, absl::string_view what) const;
  absl::Status RpcError(const grpc::ClientContext& ctx, const grpc::Status& status,
                        absl::string_view op, absl::string_view what) const;
  // Pointer to [offset, offset+size) of the arena, or INTERNAL if it lies outside.
  absl::StatusOr<uint8_t*> Locate(absl::string_view op, const ObjectName& name, uint64_t offset,
                                  uint64_t size) const;
  // A batch reply's outcomes as slots: an entry's error, or its bytes located in the arena
  // (`meta_of(i, outcome)` gives its metadata; `undo(name)` aborts or releases an entry whose
  // offset lies outside the arena, which then fails INTERNAL).
  template <typename MetaOf, typename Undo>
  std::vector<absl::StatusOr<ArenaSlot>> SlotsFrom(absl::string_view op, const std::vector<ObjectName>& names,
                                                   const proto::BatchOutcomesReply& reply, MetaOf meta_of,
                                                   Undo undo) const;
  // Get's request, and its reply turned into a pinned slot (dropping the pin on failure).
  proto::GetRequest GetRequestFor(const ObjectName& name, absl::Duration timeout) const;
  absl::StatusOr<ArenaSlot> SlotFromGetReply(const ObjectName& name, const proto::GetReply& reply);

  // The local fast path (shm/local_channel.h) for a Get or Release: the reply's body, or
  // nullopt when the RPC must be made instead (fallback, the path is off or broken).
  std::optional<std::string> LocalCall(shm::LocalOp op, const google::protobuf::Message& request);
  // `req` by the local fast path: true with `reply` filled (the object is pinned), or false
  // (reply left empty) when the RPC must be made.
  bool LocalGet(const ObjectName& name, const proto::GetRequest& req, proto::GetReply* reply);

  const std::string socket_path_;
  const ConnectOptions options_;
  const uint64_t session_;
  const uint64_t node_id_;
  const int conn_;  // the arena channel; closing it ends the session
  const std::shared_ptr<shm::Arena> arena_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<proto::Sidecar::Stub> stub_;
  // Shared with every GetAsync callback (see sdk/async_get.h for why).
  const std::shared_ptr<GetRegistry> gets_ = std::make_shared<GetRegistry>();
  // One local request in flight on conn_ at a time. A call that fails part-way (a reply not
  // read in time, a malformed one) leaves the stream out of step: the path is then off for
  // good and every call takes the RPC (the session, which is the connection, goes on).
  absl::Mutex local_mu_;
  bool local_broken_ ABSL_GUARDED_BY(local_mu_) = false;
  uint32_t local_next_id_ ABSL_GUARDED_BY(local_mu_) = 1;
};

}  // namespace ferry
