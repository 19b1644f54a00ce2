// Internal: the UCX transport class, shared by ucx_transport.cc (setup, public API) and
// ucx_progress.cc (progress thread, operations, UCX callbacks). Not for use outside
// dataplane/ucx/; the public entry point is CreateUcxTransport (ucx_transport.h).
//
// Everything that touches UCX runs on the progress thread (the worker is
// UCS_THREAD_MODE_SINGLE). Public methods only push closures into `queue_`.
//
// Operation bookkeeping: every operation that owes the caller a Done lives in `ops_` under a
// fresh id. UCX request callbacks get a heap Ticket (transport, op id, buffers the request
// reads from) that the callback frees; a callback whose op is already gone (failed early by a
// peer failure) is ignored. An op whose UCX request still reads or writes user memory
// (`in_flight`) is never completed early: a failure only marks it `doomed`, and it completes
// with that status when UCX releases the request, so no byte lands after Done ran.
// User callbacks never run inside ucp_worker_progress: UCX callbacks queue them in
// `deferred_`, flushed after progress returns.
#pragma once

#include <ucp/api/ucp.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "dataplane/transport/transport.h"
#include "dataplane/ucx/ucx_handles.h"
#include "dataplane/ucx/ucx_transport.h"
#include "dataplane/ucx/ucx_wire.h"
#include "dataplane/ucx/work_queue.h"

namespace ferry::dataplane::ucx_internal {


using ucx::WorkQueue;

enum class OpKind { kFetch, kRead, kControl, kReply };

inline const char* OpName(OpKind kind) {
  switch (kind) {
    case OpKind::kFetch: return "fetch from";
    case OpKind::kRead: return "read from";
    case OpKind::kControl: return "control message to";
    case OpKind::kReply: return "fetch reply to";
  }
  return "op";
}

struct Op {
  Op(OpKind k, NodeId p, void* d, size_t l, Done dn, RegionId r = kNoRegion)
      : kind(k), peer(p), dst(d), len(l), done(std::move(dn)), region(r) {}
  OpKind kind;
  NodeId peer = 0;
  void* dst = nullptr;     // resolved from the caller's LocalSlice
  size_t len = 0;
  Done done;
  bool in_flight = false;  // a UCX request still reads/writes the caller's memory
  absl::Status doomed;     // set when failed while in_flight
  void* request = nullptr; // fetch: the rendezvous receive in progress (for ucp_request_cancel)
  RegionId region = kNoRegion;  // the destination's region (its memh goes with the receive)
};

struct AtomicStats {
  std::atomic<uint64_t> bytes_fetched{0}, bytes_served{0}, fetches{0}, reads{0}, failures{0},
      peer_failures{0}, dropped_requests{0}, invalid_peer_addresses{0};
};

class UcxTransport;

// Per-request context for UCX callbacks; owns the buffers the request reads from.
struct Ticket {
  UcxTransport* transport;
  uint64_t op_id;        // 0: nothing to complete
  bool errors_only;      // fetch request send: success means nothing, errors fail the op
  std::string header;    // AM header bytes
  std::string payload;   // owned AM payload (control bytes, fetch header, error message)
};

// Error-callback argument of one endpoint incarnation.
struct EpContext {
  UcxTransport* transport;
  NodeId peer;
  uint64_t generation;
};

// A fetch request or control message from a node not (yet) AddPeer'd, held until it is.
struct HeldMessage {
  bool is_fetch = false;   // else a control message
  NodeId from = 0;
  uint64_t request_id = 0; // fetch only
  size_t length = 0;       // fetch only: bytes requested
  std::string payload;     // fetch header / control bytes
  std::chrono::steady_clock::time_point expires;
};

struct PeerConn {
  std::string worker_address;
  ucx::UcxEndpoint ep;  // empty until first use / after a failure
  // Declared after `ep`: destroyed first, as UCX requires.
  absl::flat_hash_map<std::string, ucx::UcxRkey> rkeys;
  EpContext* ctx = nullptr;  // owned by UcxTransport::ep_contexts_
};

class UcxTransport final : public Transport {
 public:
  static absl::StatusOr<std::unique_ptr<Transport>> Create(const UcxTransportOptions& options);
  ~UcxTransport() override;

  std::string_view Name() const override { return "ucx"; }
  NodeId self() const override { return options_.self; }
  std::string LocalAddress() const override { return address_; }
  absl::Status AddPeer(NodeId peer, std::string_view address) override;
  void RemovePeer(NodeId peer) override;
  void ResetPeer(NodeId peer) override;
  bool HasPeer(NodeId peer) const override;
  absl::StatusOr<MemoryRegion> RegisterMemory(MemoryKind kind, void* base, size_t length) override;
  void SetFetchHandler(FetchHandler handler) override { fetch_handler_ = std::move(handler); }
  void SetControlHandler(ControlHandler handler) override {
    control_handler_ = std::move(handler);
  }
  void SetPeerFailureHandler(PeerFailureHandler handler) override {
    failure_handler_ = std::move(handler);
  }
  FetchId Fetch(NodeId peer, std::string header, LocalSlice dst, Done done) override;
  void CancelFetch(FetchId id) override;
  void Read(NodeId peer, RemoteSlice src, LocalSlice dst, Done done) override;
  void SendControl(NodeId peer, std::string bytes, Done done) override;
  TransportStats Stats() const override;
  void Shutdown() override;

  // Called by responders (any thread) through the queue.
  void StartReply(NodeId peer, uint64_t request_id, size_t expected, LocalSlice src, Done sent);
  void StartFail(NodeId peer, uint64_t request_id, absl::Status status);

 private:
  explicit UcxTransport(const UcxTransportOptions& options) : options_(options) {}
  absl::Status Init();
  absl::Status InitReceiveCopy();
  bool OnProgressThread() const { return std::this_thread::get_id() == thread_id_; }
  void Post(WorkQueue::Task task);
  // Counts and logs a refused AddPeer; returns the INVALID_ARGUMENT naming node and reason.
  absl::Status RefusePeer(NodeId peer, std::string_view address, const absl::Status& why);

  // Progress thread.
  void Loop();
  bool RunTasks();
  bool DrainProgress();
  void FlushDeferred();
  void Sleep(int timeout_ms);
  void StopOnThread();

  absl::StatusOr<PeerConn*> Connect(NodeId peer, OpKind kind);
  // Adds `op` under `id` (0: a fresh one).
  uint64_t AddOp(Op op, uint64_t id = 0);
  void Complete(uint64_t op_id, absl::Status status);
  void FailPeerOps(NodeId peer, const absl::Status& status);
  void DropConnection(NodeId peer);
  // Tracks the result of a ucp_*_nbx call issued for `op_id` with ticket `t`.
  void Track(ucs_status_ptr_t req, Ticket* t);
  void FailNow(Done done, absl::Status status);
  bool HasInFlight() const;
  ucp_request_param_t SendParam(Ticket* t, uint32_t am_flags) const;
  // Adds the registration of `region` to `param`: UCX then uses it instead of looking the
  // buffer up (or registering it) per operation.
  void AddMemh(RegionId region, ucp_request_param_t* param) const;

  void StartFetch(uint64_t id, NodeId peer, std::string header, LocalSlice dst, Done done);
  void CancelOnThread(uint64_t id);
  void ResetOnThread(NodeId peer);
  void StartRead(NodeId peer, RemoteSlice src, LocalSlice dst, Done done);
  void StartControl(NodeId peer, std::string bytes, Done done);
  void HandlePeerFailure(NodeId peer, uint64_t generation, ucs_status_t status);
  // Hands an incoming request / control message to the user's handler.
  void ServeFetch(NodeId requester, uint64_t request_id, size_t length, std::string_view header);
  void DeliverControl(NodeId sender, std::string_view bytes);
  // Messages from nodes not AddPeer'd yet (see UcxTransportOptions::unknown_peer_wait_ms).
  void Hold(HeldMessage m);
  void ReleaseHeld(NodeId peer);
  void ExpireHeld();
  void DropHeld(const HeldMessage& m, std::string_view why);

  // UCX callbacks (inside ucp_worker_progress).
  static void OnEpError(void* arg, ucp_ep_h ep, ucs_status_t status);
  static void OnSendDone(void* request, ucs_status_t status, void* user_data);
  static void OnRecvDone(void* request, ucs_status_t status, size_t length, void* user_data);
  static ucs_status_t OnRequestAm(void* arg, const void* header, size_t header_length,
                                  void* data, size_t length, const ucp_am_recv_param_t* param);
  static ucs_status_t OnReplyAm(void* arg, const void* header, size_t header_length, void* data,
                                size_t length, const ucp_am_recv_param_t* param);
  static ucs_status_t OnControlAm(void* arg, const void* header, size_t header_length,
                                  void* data, size_t length, const ucp_am_recv_param_t* param);
  void OnUcxDone(Ticket* t, ucs_status_t status);
  ucs_status_t HandleReply(const ucx::ReplyHeader& h, void* data, size_t length, bool rndv);

  const UcxTransportOptions options_;
  std::string address_;
  std::shared_ptr<WorkQueue> queue_;
  AtomicStats stats_;
  std::thread thread_;
  std::thread::id thread_id_;
  absl::Mutex shutdown_mu_;

  mutable absl::Mutex peers_mu_;
  // Peers as seen by the public API (HasPeer); the progress thread keeps `conns_`.
  absl::flat_hash_map<NodeId, std::string> peer_addresses_ ABSL_GUARDED_BY(peers_mu_);
  // The last address blob refused per peer (RefusePeer logs each distinct one once).
  absl::flat_hash_map<NodeId, std::string> refused_ ABSL_GUARDED_BY(peers_mu_);

  FetchHandler fetch_handler_;
  ControlHandler control_handler_;
  PeerFailureHandler failure_handler_;

  // UCX objects; destroyed in reverse order: conns (rkeys, eps), worker, regions, context.
  ucx::UcxContext context_;
  // Registered regions: bounds and kind in `regions_` (thread-safe), their UCX registrations
  // in `memhs_` (memhs_[id - 1]; appended on the progress thread, read there only).
  RegionTable regions_{"ucx"};
  std::vector<ucx::UcxMemHandle> memhs_;
  ucx::UcxWorker worker_;
  int worker_fd_ = -1;
  // Receive datatype for rendezvous replies of at least options_.streaming_copy_min bytes,
  // when streaming copies are on (InitReceiveCopy); destroyed after the worker.
  std::optional<ucp_datatype_t> streaming_dt_;
  // ---- progress-thread state ----
  std::vector<std::unique_ptr<EpContext>> ep_contexts_;
  absl::flat_hash_map<NodeId, PeerConn> conns_;
  absl::flat_hash_map<uint64_t, Op> ops_;
  std::atomic<uint64_t> next_op_id_{1};  // any thread: Fetch returns its op id
  uint64_t next_generation_ = 1;
  std::vector<absl::AnyInvocable<void() &&>> deferred_;
  std::deque<HeldMessage> held_;  // arrival order; all share one wait, so expiry is FIFO
  size_t held_bytes_ = 0;
  bool stop_requested_ = false;
  bool stopping_ = false;
};

// ---- FetchResponder -------------------------------------------------------------------------

class UcxResponder final : public FetchResponder {
 public:
  UcxResponder(std::shared_ptr<WorkQueue> queue, UcxTransport* t, NodeId peer,
               uint64_t request_id, size_t expected)
      : queue_(std::move(queue)), t_(t), peer_(peer), id_(request_id), expected_(expected) {}
  ~UcxResponder() override {
    if (!answered_) Fail(absl::InternalError("fetch handler dropped the request unanswered"));
  }
  void Reply(LocalSlice src, Done sent) override {
    if (std::exchange(answered_, true)) return;
    queue_->Push([t = t_, peer = peer_, id = id_, exp = expected_, src, sent = std::move(sent)]() mutable {
      t->StartReply(peer, id, exp, src, std::move(sent));
    });
  }
  void Fail(absl::Status status) override {
    if (std::exchange(answered_, true)) return;
    queue_->Push([t = t_, peer = peer_, id = id_, status = std::move(status)]() mutable {
      t->StartFail(peer, id, std::move(status));
    });
  }

 private:
  std::shared_ptr<WorkQueue> queue_;  // closed once `t_` stops: tasks then never run
  UcxTransport* t_;
  NodeId peer_;
  uint64_t id_;
  size_t expected_;
  bool answered_ = false;
};

}  // namespace ferry::dataplane::ucx_internal
