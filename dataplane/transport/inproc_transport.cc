#include "dataplane/transport/inproc_transport.h"

#include <atomic>
#include <charconv>
#include <cstring>
#include <deque>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace ferry::dataplane {
namespace inproc_internal {

// A thread running posted tasks in order. Post fails once closed.
class Executor {
 public:
  using Task = absl::AnyInvocable<void() &&>;
  Executor() : thread_([this] { Run(); }) {}
  ~Executor() {
    CloseWith(nullptr);
    if (!thread_.joinable()) return;
    if (OnThread()) {
      thread_.detach();  // destroyed from our own task: cannot join ourselves
    } else {
      thread_.join();
    }
  }
  bool Post(Task task) {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    tasks_.push_back(std::move(task));
    return true;
  }
  // Queues `last` (if any) as the final task and refuses later posts. False if already closed.
  bool CloseWith(Task last) {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    if (last) tasks_.push_back(std::move(last));
    closed_ = true;
    return true;
  }
  void Join() {
    if (thread_.joinable() && !OnThread()) thread_.join();
  }
  bool OnThread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void Run() {
    while (true) {
      Task task;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || !tasks_.empty(); };
        mu_.Await(absl::Condition(&ready));
        if (tasks_.empty()) return;  // closed and drained
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      std::move(task)();
    }
  }

  absl::Mutex mu_;   // the task queue and whether it is closed
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;      // last: starts after the fields above exist
};

struct PendingOp {
  NodeId peer;
  void* dst;
  size_t len;
  Done done;
  bool is_fetch;
};

// The state of one InprocTransport, shared with tasks and responders that may outlive it.
class Node : public std::enable_shared_from_this<Node> {
 public:
  Node(std::shared_ptr<InprocFabric> fabric, NodeId id) : fabric_(std::move(fabric)), id_(id) {}

  NodeId id() const { return id_; }
  Executor& executor() { return executor_; }

  // Runs `task` on this node's thread; false if the node is dead.
  bool Post(Executor::Task task) { return executor_.Post(std::move(task)); }

  // ---- any thread ----
  mutable absl::Mutex mu_;
  absl::flat_hash_set<NodeId> peers_ ABSL_GUARDED_BY(mu_);
  RegionTable regions_{"inproc"};  // thread-safe on its own
  FetchHandler fetch_handler_ ABSL_GUARDED_BY(mu_);
  ControlHandler control_handler_ ABSL_GUARDED_BY(mu_);
  PeerFailureHandler failure_handler_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> bytes_fetched_{0}, bytes_served_{0}, fetches_{0}, reads_{0},
      failures_{0}, peer_failures_{0}, dropped_{0};

  bool KnowsPeer(NodeId peer) const {
    absl::MutexLock lock(&mu_);
    return peers_.contains(peer);
  }

  // ---- this node's thread ----
  // Ids of fetches and reads, taken on any thread (Fetch returns its id before it starts).
  uint64_t NewId() { return next_id_.fetch_add(1); }
  void StartFetch(uint64_t id, NodeId peer, std::string header, LocalSlice dst, Done done);
  void CancelFetch(uint64_t id);
  void ServeFetch(std::weak_ptr<Node> requester, uint64_t id, std::string header, size_t len);
  void DeliverReply(uint64_t id, const void* src, size_t len, std::weak_ptr<Node> server,
                    Done sent);
  void DeliverFailure(uint64_t id, absl::Status status);
  void StartRead(NodeId peer, RemoteSlice src, LocalSlice dst, Done done);
  void StartControl(NodeId peer, std::string bytes, Done done);
  void DeliverControl(NodeId from, std::string bytes);
  void OnPeerFailed(NodeId peer);
  void CancelAll();
  void FailOps(NodeId peer, const absl::Status& status);

  std::atomic<bool> stopping_{false};

 private:
  void FailNow(Done done, absl::Status status) {
    failures_.fetch_add(1);
    done(std::move(status));
  }
  void Complete(uint64_t id, absl::Status status);
  absl::StatusOr<std::shared_ptr<Node>> Reach(NodeId peer, std::string_view op);
  absl::Status CopyFromRegion(std::string_view key, uint64_t offset, void* dst, size_t len);

  const std::shared_ptr<InprocFabric> fabric_;
  const NodeId id_;
  absl::flat_hash_map<uint64_t, PendingOp> ops_;  // this node's thread only
  std::atomic<uint64_t> next_id_{1};
  Executor executor_;  // last: its thread may run tasks touching the fields above
};

// Answers one fetch for `server` on behalf of `requester`.
class InprocResponder final : public FetchResponder {
 public:
  InprocResponder(std::weak_ptr<Node> server, std::weak_ptr<Node> requester, uint64_t id,
                  size_t expected)
      : server_(std::move(server)), requester_(std::move(requester)), id_(id),
        expected_(expected) {}
  ~InprocResponder() override {
    if (!answered_) Fail(absl::InternalError("inproc: fetch handler dropped the request"));
  }
  void Reply(LocalSlice src, Done sent) override;
  void Fail(absl::Status status) override;

 private:
  std::weak_ptr<Node> server_, requester_;
  uint64_t id_;
  size_t expected_;
  bool answered_ = false;
};

void InprocResponder::Reply(LocalSlice slice, Done sent) {
  if (std::exchange(answered_, true)) return;
  auto server = server_.lock();
  auto report = [server](Done sent, absl::Status st) {
    if (server) server->Post([sent = std::move(sent), st]() mutable { sent(st); });
  };
  const size_t len = slice.length;
  absl::StatusOr<uint8_t*> src = absl::CancelledError("inproc: fetch reply: the server is gone");
  if (server) {
    auto requester = requester_.lock();
    src = server->regions_.Resolve(slice, "fetch reply to", requester ? requester->id() : 0);
  }
  if (!src.ok()) {
    answered_ = false;
    Fail(absl::InternalError(absl::StrCat("inproc: the server's reply was refused: ", src.status().message())));
    return report(std::move(sent), src.status());
  }
  if (len != expected_) {
    std::string why = absl::StrCat("inproc: fetch reply of ", len, " bytes to a request for ",
                                   expected_);
    answered_ = false;
    Fail(absl::InternalError(why));
    return report(std::move(sent), absl::InvalidArgumentError(why));
  }
  auto requester = requester_.lock();
  // If the post fails, the task (and `sent`) is destroyed unrun; report through a copy.
  auto sent_box = std::make_shared<Done>(std::move(sent));
  bool posted = requester && requester->Post([requester, id = id_, src = *src, len, server = server_,
                                              sent_box]() mutable {
    requester->DeliverReply(id, src, len, server, std::move(*sent_box));
  });
  if (!posted) {
    report(std::move(*sent_box),
           absl::UnavailableError(absl::StrCat("inproc: fetch reply: requester is gone")));
  }
}

void InprocResponder::Fail(absl::Status status) {
  if (std::exchange(answered_, true)) return;
  if (auto requester = requester_.lock()) {
    requester->Post([requester, id = id_, status = std::move(status)]() mutable {
      requester->DeliverFailure(id, std::move(status));
    });
  }
}

// ---- Node: operations ---------------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<Node>> Node::Reach(NodeId peer, std::string_view op) {
  if (stopping_) {
    return absl::CancelledError(absl::StrCat("inproc: ", std::string(op), " node ", peer,
                                             ": node ", id_, " shut down"));
  }
  if (!KnowsPeer(peer)) {
    return absl::UnavailableError(
        absl::StrCat("inproc: ", std::string(op), " node ", peer, ": unknown peer (not added)"));
  }
  std::shared_ptr<Node> target = fabric_->Find(peer);
  if (!target) {
    return absl::UnavailableError(
        absl::StrCat("inproc: ", std::string(op), " node ", peer, ": node is not reachable"));
  }
  return target;
}

void Node::Complete(uint64_t id, absl::Status status) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  PendingOp op = std::move(it->second);
  ops_.erase(it);
  if (!status.ok()) {
    failures_.fetch_add(1);
  } else {
    (op.is_fetch ? fetches_ : reads_).fetch_add(1);
    bytes_fetched_.fetch_add(op.len);
  }
  op.done(std::move(status));
}

void Node::StartFetch(uint64_t id, NodeId peer, std::string header, LocalSlice slice, Done done) {
  auto target = Reach(peer, "fetch from");
  if (!target.ok()) return FailNow(std::move(done), target.status());
  absl::StatusOr<uint8_t*> dst = regions_.Resolve(slice, "fetch from", peer);
  if (!dst.ok()) return FailNow(std::move(done), dst.status());
  const size_t len = slice.length;
  ops_.emplace(id, PendingOp{peer, *dst, len, std::move(done), true});
  bool posted = (*target)->Post([t = *target, me = weak_from_this(), id,
                                 header = std::move(header), len]() mutable {
    t->ServeFetch(std::move(me), id, std::move(header), len);
  });
  if (!posted) {
    Complete(id, absl::UnavailableError(
                     absl::StrCat("inproc: fetch from node ", peer, ": node is not reachable")));
  }
}

void Node::ServeFetch(std::weak_ptr<Node> requester, uint64_t id, std::string header,
                      size_t len) {
  auto req = requester.lock();
  if (!req || stopping_) return;
  FetchHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (!peers_.contains(req->id())) {  // data-plane traffic only from registered nodes
      dropped_.fetch_add(1);
      return;
    }
    handler = fetch_handler_;
  }
  auto responder = std::make_unique<InprocResponder>(weak_from_this(), requester, id, len);
  if (!handler) {
    responder->Fail(absl::UnimplementedError(
        absl::StrCat("inproc: node ", id_, " serves no fetches (no handler)")));
    return;
  }
  handler(req->id(), header, std::move(responder));
}

void Node::DeliverReply(uint64_t id, const void* src, size_t len, std::weak_ptr<Node> server,
                        Done sent) {
  absl::Status outcome = absl::OkStatus();
  auto it = ops_.find(id);
  if (it == ops_.end()) {
    outcome = absl::CancelledError("inproc: fetch reply: the request is no longer outstanding");
  } else {
    if (len > 0) std::memcpy(it->second.dst, src, len);
    Complete(id, absl::OkStatus());
  }
  if (auto s = server.lock()) {
    s->Post([s, sent = std::move(sent), outcome, len]() mutable {
      if (outcome.ok()) s->bytes_served_.fetch_add(len);
      sent(outcome);
    });
  }
}

void Node::DeliverFailure(uint64_t id, absl::Status status) { Complete(id, std::move(status)); }

void Node::CancelFetch(uint64_t id) {
  auto it = ops_.find(id);
  if (it == ops_.end() || !it->second.is_fetch) return;
  const NodeId peer = it->second.peer;
  Complete(id, absl::CancelledError(absl::StrCat("inproc: fetch from node ", peer, ": cancelled")));
}

// Runs on the reader's thread (the owner's region table is thread-safe); the owner checks
// the range again against its own record of the region.
absl::Status Node::CopyFromRegion(std::string_view key, uint64_t offset, void* dst, size_t len) {
  RegionId region = kNoRegion;
  auto [ptr, ec] = std::from_chars(key.data(), key.data() + key.size(), region);
  if (ec != std::errc() || ptr != key.data() + key.size() || region == kNoRegion) {
    return absl::InvalidArgumentError(absl::StrCat("inproc: read from node ", id_, ": unknown remote key"));
  }
  absl::StatusOr<uint8_t*> src = regions_.Resolve(LocalSlice{region, offset, len}, "read of its region by a peer");
  if (!src.ok()) return src.status();
  if (len > 0) std::memcpy(dst, *src, len);
  return absl::OkStatus();
}

void Node::StartRead(NodeId peer, RemoteSlice src, LocalSlice slice, Done done) {
  auto target = Reach(peer, "read from");
  if (!target.ok()) return FailNow(std::move(done), target.status());
  absl::StatusOr<uint8_t*> dst = regions_.Resolve(slice, "read from", peer);
  if (!dst.ok()) return FailNow(std::move(done), dst.status());
  const std::string op = absl::StrCat("read from node ", peer);   // a test transport: clarity over speed
  absl::StatusOr<RemoteKey> key = DecodeRemoteKey(src.remote_key);
  absl::Status checked;
  if (!key.ok()) {
    checked = absl::InvalidArgumentError(absl::StrCat("inproc: ", op, ": ", key.status().message()));
  } else if (absl::Status kind = CheckSupportedKind(key->kind, absl::StrCat("inproc: ", op)); !kind.ok()) {
    checked = kind;
  } else if (src.length != slice.length) {
    checked = absl::InvalidArgumentError(absl::StrCat("inproc: ", op, ": source of ", src.length,
                                                      " bytes into a destination of ", slice.length));
  } else {
    checked = CheckRange(absl::StrCat("inproc: ", op, ": remote region"), key->length, src.offset, src.length);
  }
  if (!checked.ok()) return FailNow(std::move(done), checked);
  uint64_t id = NewId();
  ops_.emplace(id, PendingOp{peer, *dst, slice.length, std::move(done), false});
  Complete(id, (*target)->CopyFromRegion(key->transport_key, src.offset, *dst, slice.length));
}

void Node::StartControl(NodeId peer, std::string bytes, Done done) {
  auto target = Reach(peer, "control message to");
  if (!target.ok()) return FailNow(std::move(done), target.status());
  bool posted = (*target)->Post([t = *target, from = id_, bytes = std::move(bytes)]() mutable {
    t->DeliverControl(from, std::move(bytes));
  });
  if (!posted) {
    return FailNow(std::move(done), absl::UnavailableError(absl::StrCat(
                                        "inproc: control message to node ", peer,
                                        ": node is not reachable")));
  }
  done(absl::OkStatus());
}

void Node::DeliverControl(NodeId from, std::string bytes) {
  if (stopping_) return;
  ControlHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (!peers_.contains(from)) {
      dropped_.fetch_add(1);
      return;
    }
    handler = control_handler_;
  }
  if (handler) handler(from, bytes);
}

void Node::FailOps(NodeId peer, const absl::Status& status) {
  std::vector<uint64_t> ids;
  for (const auto& [id, op] : ops_) {
    if (op.peer == peer) ids.push_back(id);
  }
  for (uint64_t id : ids) Complete(id, status);
}

void Node::OnPeerFailed(NodeId peer) {
  if (stopping_) return;
  PeerFailureHandler handler;
  bool known;
  {
    absl::MutexLock lock(&mu_);
    known = peers_.contains(peer);
    handler = failure_handler_;
  }
  absl::Status why =
      absl::UnavailableError(absl::StrCat("inproc: node ", peer, " failed (disconnected)"));
  bool had_ops = false;
  for (const auto& [id, op] : ops_) had_ops |= (op.peer == peer);
  if (!known && !had_ops) return;
  FailOps(peer, why);
  peer_failures_.fetch_add(1);
  if (handler) handler(peer, why);
}

void Node::CancelAll() {
  std::vector<uint64_t> ids;
  for (const auto& [id, op] : ops_) ids.push_back(id);
  for (uint64_t id : ids) {
    NodeId peer = ops_.at(id).peer;
    Complete(id, absl::CancelledError(absl::StrCat("inproc: operation on node ", peer,
                                                   ": transport of node ", id_, " shut down")));
  }
}

}  // namespace inproc_internal

using inproc_internal::Node;

// ---- InprocFabric ---------------------------------------------------------------------------

absl::Status InprocFabric::Attach(std::shared_ptr<Node> node) {
  absl::MutexLock lock(&mu_);
  if (!nodes_.emplace(node->id(), node).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("inproc: node ", node->id(), " is already attached to the fabric"));
  }
  return absl::OkStatus();
}

std::shared_ptr<Node> InprocFabric::Find(NodeId node) const {
  absl::MutexLock lock(&mu_);
  auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : it->second;
}

bool InprocFabric::IsAttached(NodeId node) const { return Find(node) != nullptr; }

void InprocFabric::Disconnect(NodeId node) {
  std::shared_ptr<Node> dead;
  std::vector<std::shared_ptr<Node>> others;
  {
    absl::MutexLock lock(&mu_);
    auto it = nodes_.find(node);
    if (it == nodes_.end()) return;
    dead = std::move(it->second);
    nodes_.erase(it);
    for (const auto& [id, n] : nodes_) others.push_back(n);
  }
  dead->stopping_ = true;
  // Tasks already queued run in stopping mode (new operations are CANCELLED); CancelAll is
  // the last task, so every outstanding Done runs before the thread exits.
  dead->executor().CloseWith([dead] { dead->CancelAll(); });
  dead->executor().Join();
  for (auto& n : others) {
    n->Post([n, node] { n->OnPeerFailed(node); });
  }
}

// ---- InprocTransport ----------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<InprocTransport>> InprocTransport::Create(
    std::shared_ptr<InprocFabric> fabric, NodeId self) {
  if (!fabric) return absl::InvalidArgumentError("inproc: null fabric");
  auto node = std::make_shared<Node>(fabric, self);
  absl::Status st = fabric->Attach(node);
  if (!st.ok()) return st;
  return std::unique_ptr<InprocTransport>(new InprocTransport(std::move(fabric), self, node));
}

InprocTransport::~InprocTransport() { Shutdown(); }

void InprocTransport::Kill() { fabric_->Disconnect(self_); }

void InprocTransport::Shutdown() { Kill(); }

std::string InprocTransport::LocalAddress() const { return std::to_string(self_); }

absl::Status InprocTransport::AddPeer(NodeId peer, std::string_view address) {
  NodeId parsed = 0;
  auto [ptr, ec] = std::from_chars(address.data(), address.data() + address.size(), parsed);
  if (address.empty() || ec != std::errc() || ptr != address.data() + address.size()) {
    return absl::InvalidArgumentError(absl::StrCat("inproc: AddPeer(node ", peer,
                                                   "): not an inproc address: '",
                                                   std::string(address), "'"));
  }
  if (parsed != peer) {
    return absl::InvalidArgumentError(
        absl::StrCat("inproc: AddPeer(node ", peer, "): address belongs to node ", parsed));
  }
  absl::MutexLock lock(&node_->mu_);
  node_->peers_.insert(peer);
  return absl::OkStatus();
}

void InprocTransport::RemovePeer(NodeId peer) {
  {
    absl::MutexLock lock(&node_->mu_);
    node_->peers_.erase(peer);
  }
  node_->Post([n = node_, peer] {
    n->FailOps(peer, absl::UnavailableError(absl::StrCat("inproc: node ", peer, " was removed")));
  });
}

void InprocTransport::ResetPeer(NodeId peer) {
  node_->Post([n = node_, peer] {
    n->FailOps(peer, absl::UnavailableError(
                         absl::StrCat("inproc: connection to node ", peer, " was reset")));
  });
}

bool InprocTransport::HasPeer(NodeId peer) const { return node_->KnowsPeer(peer); }

absl::StatusOr<MemoryRegion> InprocTransport::RegisterMemory(MemoryKind kind, void* base, size_t length) {
  absl::StatusOr<RegionId> id = node_->regions_.Add(kind, base, length);
  if (!id.ok()) return id.status();
  std::string key = EncodeRemoteKey(RemoteKey{kind, reinterpret_cast<uint64_t>(base), length, std::to_string(*id)});
  return MemoryRegion{*id, kind, base, length, std::move(key)};
}

void InprocTransport::SetFetchHandler(FetchHandler handler) {
  absl::MutexLock lock(&node_->mu_);
  node_->fetch_handler_ = std::move(handler);
}

void InprocTransport::SetControlHandler(ControlHandler handler) {
  absl::MutexLock lock(&node_->mu_);
  node_->control_handler_ = std::move(handler);
}

void InprocTransport::SetPeerFailureHandler(PeerFailureHandler handler) {
  absl::MutexLock lock(&node_->mu_);
  node_->failure_handler_ = std::move(handler);
}

// After Shutdown/Kill the post fails and the operation (with its Done) is dropped: no callback
// runs after Shutdown.
FetchId InprocTransport::Fetch(NodeId peer, std::string header, LocalSlice dst, Done done) {
  const uint64_t id = node_->NewId();
  node_->Post([n = node_, id, peer, header = std::move(header), dst, done = std::move(done)]() mutable {
    n->StartFetch(id, peer, std::move(header), dst, std::move(done));
  });
  return id;
}

// Queued behind the Fetch that returned `id` (one FIFO thread), so it finds the fetch
// outstanding unless it has completed.
void InprocTransport::CancelFetch(FetchId id) {
  if (id == 0) return;
  node_->Post([n = node_, id] { n->CancelFetch(id); });
}

void InprocTransport::Read(NodeId peer, RemoteSlice src, LocalSlice dst, Done done) {
  node_->Post([n = node_, peer, src = std::move(src), dst, done = std::move(done)]() mutable {
    n->StartRead(peer, std::move(src), dst, std::move(done));
  });
}

void InprocTransport::SendControl(NodeId peer, std::string bytes, Done done) {
  node_->Post([n = node_, peer, bytes = std::move(bytes), done = std::move(done)]() mutable {
    n->StartControl(peer, std::move(bytes), std::move(done));
  });
}

TransportStats InprocTransport::Stats() const {
  TransportStats s;
  s.bytes_fetched = node_->bytes_fetched_.load();
  s.bytes_served = node_->bytes_served_.load();
  s.fetches = node_->fetches_.load();
  s.reads = node_->reads_.load();
  s.failures = node_->failures_.load();
  s.peer_failures = node_->peer_failures_.load();
  s.dropped_requests = node_->dropped_.load();
  return s;
}

}  // namespace ferry::dataplane
