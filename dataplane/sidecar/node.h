// The heart of ferryd: one node's arena, object store, transport, chunk server and puller,
// and its session with the coordinator (registration, heartbeats, membership, instructions,
// re-registration after a coordinator restart).
//
// Threading: every public method is thread-safe and may block (they are called from gRPC
// handler threads). The coordinator session runs on its own two threads (reader, heartbeat).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/executor.h"
#include "dataplane/engine/chunk_server.h"
#include "dataplane/engine/puller.h"
#include "dataplane/sidecar/report_queue.h"
#include "dataplane/store/arena.h"
#include "dataplane/store/object_store.h"
#include "dataplane/transport/transport.h"
#include "proto/coordinator.grpc.pb.h"

namespace ferry::dataplane {

struct NodeOptions {
  std::string name;
  std::string coordinator;             // host:port
  std::string token;
  uint64_t node_id = 0;                // 0: random
  std::map<std::string, std::string> labels;
  uint32_t window_override = 0;
  uint32_t max_retries = 16;           // sender failures tolerated per Get
  uint32_t max_broadcast_pulls = 128;  // explicit-broadcast pulls running at once; more are refused (ABORTED)
  double max_pull_rate_Bps = 0;        // > 0: cap on each pull's rate
  bool checksum_all = false;           // checksum every object at Seal, whatever the client asked
  RegionId arena_region = kNoRegion;   // the arena's registration with the transport (RegisterMemory)
};

struct NodeCounters {
  std::atomic<uint64_t> bytes_received{0};
  std::atomic<uint64_t> chunks_received{0};
  std::atomic<uint64_t> pulls{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> checksum_mismatches{0};   // received copies whose bytes did not match
};

struct GetResult {
  PinnedObject pin;
  bool pulled = false;
  uint64_t source_node = 0;
  double seconds = 0;
};

class Node {
 public:
  // Takes ownership of the arena and transport (already created; the arena registered).
  static absl::StatusOr<std::unique_ptr<Node>> Create(NodeOptions options, std::unique_ptr<Arena> arena,
                                                      std::unique_ptr<Transport> transport);
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

  ObjectStore& store() { return store_; }
  Arena& arena() { return *arena_; }
  Transport& transport() { return *transport_; }
  uint64_t node_id() const { return options_.node_id; }
  const std::string& name() const { return options_.name; }
  bool coordinator_connected() const { return connected_.load(); }
  const NodeCounters& counters() const { return counters_; }
  const ChunkServer& chunk_server() const { return server_; }
  double bandwidth_bps() const { return bandwidth_bps_.load(); }
  double latency_s() const { return latency_s_.load(); }
  std::string MetricsText();

 private:
  Node(NodeOptions options, std::unique_ptr<Arena> arena, std::unique_ptr<Transport> transport);

  // Get, and whether a failure was already reported to the coordinator as ABORTED (so an
  // explicit-broadcast pull does not report it a second time). `planned`, if set, is the
  // sender the coordinator already attached us to: the first attempt uses it instead of
  // calling AcquireSource.
  absl::StatusOr<GetResult> GetReporting(const std::string& ns, const std::string& key, SessionId session,
                                         absl::Time deadline, const proto::AcquireSourceReply* planned,
                                         bool* abort_reported);
  absl::StatusOr<GetResult> FetchRemote(const std::string& ns, const std::string& key, SessionId session,
                                        absl::Time deadline, const proto::AcquireSourceReply* planned,
                                        bool* abort_reported);
  struct Fetch;
  absl::StatusOr<bool> PullAttempt(Fetch& f, const proto::AcquireSourceReply& reply, absl::Time asked);
  absl::Status GiveUp(Fetch& f, absl::Status why, uint64_t sender, bool attached);
  absl::Status AlreadyHere(Fetch& f, absl::Status why);
  // One AcquireSource call: a sender (or the inline bytes) for `ref`, skipping `exclude`.
  absl::Status AcquireSource(const proto::ObjectRef& ref, const std::vector<uint64_t>& exclude,
                             absl::Duration remaining, proto::AcquireSourceReply* reply);
  // Creates the receiving copy for a pull and pins it while we pull into it.
  absl::StatusOr<PinnedObject> StartReceiving(const std::string& ns, const std::string& key,
                                              const proto::AcquireSourceReply& reply);
  absl::Status PullFromSender(const PullSpec& spec, PullStats* total);
  absl::Status StoreInline(const std::string& ns, const std::string& key, const proto::ObjectMeta& meta,
                           const std::string& data);
  // Queues a transfer report (ReportQueue). It reaches the coordinator before this node's
  // next object RPC (each flushes first), so a SENDER_FAILED precedes the re-planning
  // AcquireSource.
  void Report(const std::string& ns, const std::string& key, uint64_t sender,
              proto::ReportTransferRequest::Outcome outcome, const std::string& detail, const PullStats& stats,
              uint64_t incarnation = 0);
  // A DropInstruction: the copy goes, its incarnation is remembered as deleted.
  void HandleDrop(const proto::DropInstruction& drop);
  void SendReport(const proto::ReportTransferRequest& req);
  // Before any coordinator call about objects: this node's queued reports go first.
  void FlushReports();
  void RecordMeasurement(const PullStats& stats, uint32_t chunk_size, uint64_t sender, bool sender_complete);
  absl::Status EnsurePeer(uint64_t peer, const std::string& address);
  // For a checksummed object: OK if the bytes at `offset` match meta.checksum, else DATA_LOSS
  // naming the object, where the copy came from and both hashes.
  absl::Status VerifyChecksum(const std::string& ns, const std::string& key, const StoredMeta& meta,
                              uint64_t offset, uint64_t from);

  void SessionLoop();
  void RunSession();
  void HandleMembership(const proto::Membership& m);
  void HandleWelcome(const proto::Welcome& w);
  // Drops the peers kept past their grace that are still not members.
  void ExpireUnconfirmedPeers();
  void HandlePull(const proto::PullInstruction& pull);
  void OnEvicted(const std::string& ns, const std::string& key);
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) const;

  NodeOptions options_;
  std::unique_ptr<Arena> arena_;
  std::unique_ptr<Transport> transport_;
  ObjectStore store_;
  ChunkServer server_;
  Puller puller_;
  NodeCounters counters_;
  std::atomic<double> bandwidth_bps_{0};
  std::atomic<double> latency_s_{0};

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<proto::Coordinator::Stub> stub_;
  std::unique_ptr<ReportQueue> reports_;   // uses stub_
  std::atomic<bool> connected_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> inline_max_{64 * 1024};
  std::thread session_thread_;
  const std::string session_secret_;   // Hello.session_secret: random, per process

  std::mutex mu_;
  std::condition_variable cv_;
  // Keys this node is pulling right now: a second Get waits for the first pull.
  std::set<std::pair<std::string, std::string>> pulling_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::string> peers_ ABSL_GUARDED_BY(mu_);   // node id -> dp address
  uint64_t membership_epoch_ ABSL_GUARDED_BY(mu_) = 0;           // last applied Membership
  grpc::ClientContext* session_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  // Why the coordinator last refused our registration (OK: it did not, or it accepted since).
  absl::Status refusal_ ABSL_GUARDED_BY(mu_);
  // After a Welcome that was not preceded by our death (a coordinator restart: nodes
  // re-register one by one), a peer missing from the membership is kept until this time
  // instead of being dropped at once: the others have not re-registered yet, and dropping
  // them would close connections they still use. Peers so kept, by id -> address.
  absl::Time removal_grace_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::map<uint64_t, std::string> unconfirmed_peers_ ABSL_GUARDED_BY(mu_);
  // Coordinator calls that may wait long (AcquireSource): cancelled by Shutdown.
  std::set<grpc::ClientContext*> waiting_calls_ ABSL_GUARDED_BY(mu_);
  static constexpr size_t kLatencySamples = 16;
  std::deque<double> latency_samples_ ABSL_GUARDED_BY(mu_);   // per-hop latency, newest last
  std::set<uint64_t> latency_peers_ ABSL_GUARDED_BY(mu_);      // senders pulled from at least once
  // Runs explicit-broadcast pulls; joined by Shutdown before the transport and store go.
  Executor broadcast_pulls_;
};

}  // namespace ferry::dataplane
