// The heart of ferryd, as wiring: it builds one node's pieces and connects them:
// - the arena, object store, transport and chunk server (serving this node's copies);
// - a CoordinatorClient (gRPC unless a test passes a fake);
// - the TransferReporter (ReportTransfer calls, in order, in the background);
// - the LinkEstimator (bandwidth / latency from its own pulls, sent in heartbeats);
// - the ObjectFetcher (the Get path: AcquireSource, pull, checksum check, reports);
// - one handler per coordinator instruction kind (MembershipHandler, PullHandler,
//   DropHandler) and the CoordinatorSession that dispatches to them.
// The client calls (Create, Seal, Get, Delete, List, ClusterStatus, Broadcast) live here.
//
// Threads: the session thread and its heartbeat thread (CoordinatorSession), the report
// thread (ReportQueue), the broadcast-pull executor (PullHandler): all owned and joined by
// Shutdown, in that order, before the transport stops.
// Every public method is thread-safe and may block (they are called from gRPC handler threads).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/synchronization/mutex.h"
#include "dataplane/engine/chunk_server.h"
#include "dataplane/sidecar/coordinator_client.h"
#include "dataplane/sidecar/coordinator_session.h"
#include "dataplane/sidecar/handlers/drop_handler.h"
#include "dataplane/sidecar/handlers/membership_handler.h"
#include "dataplane/engine/pack_buffers.h"
#include "dataplane/sidecar/handlers/batch_pull_handler.h"
#include "dataplane/sidecar/handlers/pull_handler.h"
#include "dataplane/sidecar/handlers/program_handler.h"
#include "dataplane/sidecar/handlers/reduce_handler.h"
#include "dataplane/sidecar/link_estimator.h"
#include "dataplane/sidecar/object_fetcher.h"
#include "dataplane/sidecar/transfer_reporter.h"
#include "shm/arena.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/transport.h"
#include "proto/coordinator.pb.h"

namespace ferry::dataplane {

struct NodeOptions {
  std::string name;
  std::string coordinator;             // host:port (unused when Create is given a client)
  std::string token;
  uint64_t node_id = 0;                // 0: random
  std::map<std::string, std::string> labels;
  uint32_t window_override = 0;
  uint32_t max_retries = 16;           // sender failures tolerated per Get
  uint32_t max_broadcast_pulls = 128;  // explicit-broadcast pulls running at once; more are refused (ABORTED)
  double max_pull_rate_Bps = 0;        // > 0: cap on each pull's rate
  uint32_t max_batch_pulls = 32;       // batch-broadcast instructions running at once; more are refused
  // Pack buffers (batch broadcasts of small objects): this many of pack_buffer_bytes each for
  // serving and as many for receiving, registered with the transport at start-up.
  uint32_t pack_buffers = 16;
  uint32_t pack_buffer_bytes = 1 << 20;
  uint32_t reduce_slot_sets = 8;       // reduce positions with children building at once (8 MiB of scratch each)
  uint32_t program_slot_sets = 4;      // group collectives running at once here (8 MiB of scratch each)
  bool checksum_all = false;           // checksum every object at Seal, whatever the client asked
  RegionId arena_region = kNoRegion;   // the arena's registration with the transport (RegisterMemory)
};

class Node {
 public:
  // Takes ownership of the arena and transport (already created; the arena registered) and
  // of `coordinator` (null: a GrpcCoordinatorClient for options.coordinator).
  static absl::StatusOr<std::unique_ptr<Node>> Create(NodeOptions options, std::unique_ptr<shm::Arena> arena,
                                                      std::unique_ptr<Transport> transport,
                                                      std::unique_ptr<CoordinatorClient> coordinator = nullptr);
  ~Node();

  // A fresh random 63-bit node id (never 0).
  static uint64_t NewNodeId();

  // Starts the coordinator session (reconnecting forever until Shutdown).
  void Start();
  // Waits up to `timeout` for the first registration's outcome: OK once registered; the
  // coordinator's refusal (ALREADY_EXISTS for a name or id in use, UNAUTHENTICATED for a bad
  // token, INVALID_ARGUMENT) as a status naming it; DEADLINE_EXCEEDED if the coordinator did
  // not answer in time (the session keeps trying). Blocks.
  absl::Status WaitRegistered(absl::Duration timeout);
  // Stops the session, cancels coordinator calls and pulls, joins every thread. Idempotent.
  void Shutdown();

  // Client operations (session > 0). See proto/sidecar.proto for the contracts.
  absl::StatusOr<uint64_t> CreateObject(const std::string& ns, const std::string& key, const StoredMeta& meta,
                                        SessionId session);
  absl::Status Seal(const std::string& ns, const std::string& key, SessionId session);
  absl::StatusOr<GetResult> Get(const std::string& ns, const std::string& key, SessionId session,
                                absl::Time deadline);
  absl::Status DeleteObject(const std::string& ns, const std::string& key);
  absl::StatusOr<proto::ListReply> List(const std::string& ns, const std::string& prefix, uint32_t limit);
  absl::StatusOr<proto::ClusterStatusReply> ClusterStatus();
  absl::StatusOr<proto::BroadcastReply> Broadcast(const proto::BroadcastRequest& req);
  absl::StatusOr<proto::BroadcastBatchReply> BroadcastBatch(const proto::BroadcastBatchRequest& req);
  // Reduce (all = false) or AllReduce through the coordinator, as this node (requester). A small
  // reduce rooted here comes back with the result's bytes: stored (and reported) before this
  // returns; an error if they cannot be (the result exists in the coordinator still).
  absl::StatusOr<proto::ReduceReply> Reduce(const proto::ReduceRequest& req, bool all);
  // The coordinator's Group RPC (static groups and their collectives).
  absl::StatusOr<proto::GroupReply> Group(const proto::GroupRequest& req);

  // Batches (node_batch.cc; contracts in proto/sidecar.proto). The caller has validated the
  // names (core/batch.h: one namespace, distinct) and metadata. An error status refuses the
  // whole batch (nothing done); otherwise there is one outcome per entry, in order.
  struct CreateEntry {
    std::string key;
    StoredMeta meta;
  };
  absl::StatusOr<std::vector<absl::StatusOr<uint64_t>>> CreateBatch(const std::string& ns,
                                                                    const std::vector<CreateEntry>& entries,
                                                                    SessionId session);
  absl::StatusOr<std::vector<absl::Status>> SealBatch(const std::string& ns, const std::vector<std::string>& keys,
                                                      SessionId session);
  // The objects not held here are pulled as one batch broadcast to this node; what that does
  // not bring (objects not created yet, a failed pull) goes the single Get's way, until
  // `deadline`. `pulled_bytes` (may be null) gets the bytes moved from other nodes.
  absl::StatusOr<std::vector<absl::StatusOr<GetResult>>> GetBatch(const std::string& ns,
                                                                  const std::vector<std::string>& keys,
                                                                  SessionId session, absl::Time deadline,
                                                                  uint64_t* pulled_bytes);
  absl::StatusOr<std::vector<absl::Status>> DeleteBatch(const std::string& ns, const std::vector<std::string>& keys);

  ObjectStore& store() { return store_; }
  shm::Arena& arena() { return *arena_; }
  Transport& transport() { return *transport_; }
  uint64_t node_id() const { return options_.node_id; }
  const std::string& name() const { return options_.name; }
  bool coordinator_connected() const { return session_->connected(); }
  const NodeCounters& counters() const { return counters_; }
  const ChunkServer& chunk_server() const { return server_; }
  const MembershipHandler& membership() const { return *membership_; }
  double bandwidth_bps() const { return links_.bandwidth_bps(); }
  double latency_s() const { return links_.latency_s(); }
  std::string MetricsText();

 private:
  Node(NodeOptions options, std::unique_ptr<shm::Arena> arena, std::unique_ptr<Transport> transport,
       std::unique_ptr<CoordinatorClient> coordinator);

  // Allocates and registers the pack buffers; starts the batch-pull handler.
  [[nodiscard]] absl::Status SetUpPacks();
  // Seal's two halves: seal in the store (hashing first if checksummed) and build the
  // PublishRequest; then turn the coordinator's answer into the client's (an outage keeps the
  // object to re-report; a refusal deletes it).
  absl::StatusOr<proto::PublishRequest> SealLocally(const std::string& ns, const std::string& key, SessionId session);
  absl::Status PublishOutcome(const std::string& ns, const std::string& key, const absl::Status& published);
  // Publishes `requests` with PublishBatch calls (one namespace, at most 8,192 entries and 4 MiB
  // of inline bytes each; requests' bytes are moved out): per request, the status and whether
  // the coordinator refused that entry (true) or the status is the whole call's (false).
  std::vector<std::pair<absl::Status, bool>> PublishGroups(std::vector<std::pair<size_t, proto::PublishRequest>>& requests);
  // Publishes, with their bytes, the small objects the last Hello re-reported without them
  // (its size is bounded; see MakeHello). Runs on republish_thread_ after a Welcome.
  void RepublishDeferred();
  // The PublishRequest announcing a sealed local object (its inline bytes if small).
  absl::StatusOr<proto::PublishRequest> PublishRequestFor(const std::string& ns, const std::string& key);
  // Maps and registers the reduce and group-program scratch and makes their handlers.
  [[nodiscard]] absl::Status SetUpReduce();
  // Publishes a sealed local object (a Seal's, or a reduce's result).
  [[nodiscard]] absl::Status Publish(const std::string& ns, const std::string& key);
  proto::Hello MakeHello();
  proto::Heartbeat MakeHeartbeat();
  void OnEvicted(const std::string& ns, const std::string& key);

  // Construction order is the order of dependence; Shutdown stops them in reverse.
  NodeOptions options_;
  std::unique_ptr<shm::Arena> arena_;
  // The pack buffers' memory: one mapping, the first half for serving, the second for
  // receiving. Declared before the transport, so it is unmapped after the transport is gone.
  struct Mapping {
    void* base = nullptr;
    size_t length = 0;
    ~Mapping();
  } pack_memory_, reduce_scratch_, program_scratch_;
  // Maps `sets` x `set_bytes` of anonymous memory into `mapping` and registers it.
  absl::StatusOr<MemoryRegion> MapScratch(uint32_t sets, uint64_t set_bytes, const char* what, Mapping& mapping);
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<CoordinatorClient> coordinator_;
  ObjectStore store_;
  ChunkServer server_;
  NodeCounters counters_;
  LinkEstimator links_;
  TransferReporter reports_;
  ObjectFetcher fetcher_;
  std::unique_ptr<MembershipHandler> membership_;
  std::unique_ptr<PullHandler> pulls_;
  std::unique_ptr<DropHandler> drops_;
  std::unique_ptr<PackBuffers> serve_packs_;
  std::unique_ptr<PackBuffers> receive_packs_;
  std::unique_ptr<BatchPullHandler> batch_pulls_;
  std::unique_ptr<ReduceHandler> reduces_;
  std::unique_ptr<ProgramHandler> programs_;
  std::unique_ptr<CoordinatorSession> session_;
  std::atomic<uint32_t> inline_max_{64 * 1024};   // Welcome.inline_max_bytes
  absl::Mutex deferred_mu_;
  std::vector<std::pair<std::string, std::string>> deferred_ ABSL_GUARDED_BY(deferred_mu_);   // (ns, key)
  std::thread republish_thread_;   // RepublishDeferred; started by a Welcome, joined by Shutdown
  std::atomic<bool> stopped_{false};
  const std::string session_secret_;   // Hello.session_secret: random, per process
};

}  // namespace ferry::dataplane
