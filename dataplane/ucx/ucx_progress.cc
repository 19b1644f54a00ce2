// UCX transport: the progress thread, the operations it starts and the UCX callbacks.
// Everything in this file runs on the progress thread (see ucx_transport_impl.h).
#include <poll.h>

#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "dataplane/ucx/ucx_transport_impl.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane::ucx_internal {
namespace {

using Clock = std::chrono::steady_clock;
using ucx::UcsError;

constexpr int kMaxProgressRounds = 64;    // progress calls before looking at the queue again
constexpr int kInFlightPollMs = 5;        // poll bound while operations are outstanding
constexpr auto kShutdownDrain = std::chrono::seconds(2);
constexpr size_t kMaxHeld = 1024;          // messages held for peers not added yet
constexpr size_t kMaxHeldBytes = 4 << 20;  // and their payload bytes

absl::Status OpError(OpKind kind, NodeId peer, ucs_status_t st) {
  if (ucx::IsConnectionLoss(st)) {
    return absl::UnavailableError(absl::StrCat("ucx: ", OpName(kind), " node ", peer, ": ",
                                               ucx::ConnectionLost(peer, st).message()));
  }
  return UcsError(st, absl::StrCat("ucx: ", OpName(kind), " node ", peer));
}

absl::Status Prefixed(const absl::Status& st, absl::string_view prefix) {
  return absl::Status(st.code(), absl::StrCat(prefix, st.message()));
}

}  // namespace

// ---- loop -----------------------------------------------------------------------------------

void UcxTransport::Loop() {
  auto last_event = Clock::now();
  const auto spin = std::chrono::microseconds(options_.spin_us);
  while (true) {
    bool active = RunTasks();
    if (stop_requested_) break;
    if (!held_.empty()) ExpireHeld();
    active |= DrainProgress();
    FlushDeferred();
    if (stop_requested_) break;
    auto now = Clock::now();
    if (active) {
      last_event = now;
      continue;
    }
    if (options_.busy_poll) continue;
    if (!ops_.empty() && now - last_event < spin) continue;
    Sleep(ops_.empty() ? static_cast<int>(options_.idle_poll_ms) : kInFlightPollMs);
  }
  StopOnThread();
}

bool UcxTransport::RunTasks() {
  std::deque<WorkQueue::Task> tasks = queue_->TakeAll();
  for (auto& task : tasks) std::move(task)();
  return !tasks.empty();
}

bool UcxTransport::DrainProgress() {
  bool any = false;
  for (int i = 0; i < kMaxProgressRounds; ++i) {
    if (ucp_worker_progress(worker_.get()) == 0) break;
    any = true;
  }
  return any || !deferred_.empty();
}

void UcxTransport::FlushDeferred() {
  while (!deferred_.empty()) {
    std::vector<absl::AnyInvocable<void() &&>> batch;
    batch.swap(deferred_);
    for (auto& f : batch) std::move(f)();
  }
}

// Arms the worker and sleeps until UCX or the queue has something, or `timeout_ms` passes
// (the bound protects against missed wakeups, e.g. on shared-memory lanes).
void UcxTransport::Sleep(int timeout_ms) {
  ucs_status_t st = ucp_worker_arm(worker_.get());
  if (st == UCS_ERR_BUSY) return;  // unprocessed events: progress again first
  pollfd fds[2] = {{worker_fd_, POLLIN, 0}, {queue_->fd(), POLLIN, 0}};
  poll(fds, 2, st == UCS_OK ? timeout_ms : 1);
  if (fds[1].revents & POLLIN) queue_->ClearWakeup();
}

bool UcxTransport::HasInFlight() const {
  for (const auto& [id, op] : ops_) {
    if (op.in_flight) return true;
  }
  return false;
}

void UcxTransport::StopOnThread() {
  stopping_ = true;
  queue_->Close();
  RunTasks();  // operations queued before Close complete with CANCELLED (stopping_)
  for (auto& [peer, conn] : conns_) {
    conn.rkeys.clear();
    conn.ep.Reset();  // force: requests on it complete with UCS_ERR_CANCELED
    conn.ctx = nullptr;
  }
  // Let UCX release requests that still touch callers' memory before reporting them done.
  const auto deadline = Clock::now() + kShutdownDrain;
  while (HasInFlight() && Clock::now() < deadline) {
    if (ucp_worker_progress(worker_.get()) == 0) Sleep(1);
  }
  std::vector<uint64_t> ids;
  for (const auto& [id, op] : ops_) ids.push_back(id);
  for (uint64_t id : ids) {
    const Op& op = ops_.at(id);
    Complete(id, !op.doomed.ok() ? op.doomed
                                 : absl::CancelledError(absl::StrCat(
                                       "ucx: ", OpName(op.kind), " node ", op.peer,
                                       ": transport of node ", options_.self, " shut down")));
  }
  FlushDeferred();
}

// ---- bookkeeping ------------------------------------------------------------------------------

uint64_t UcxTransport::AddOp(Op op, uint64_t id) {
  if (id == 0) id = next_op_id_.fetch_add(1);
  ops_.emplace(id, std::move(op));
  return id;
}

void UcxTransport::FailNow(Done done, absl::Status status) {
  stats_.failures.fetch_add(1, std::memory_order_relaxed);
  deferred_.push_back([done = std::move(done), status = std::move(status)]() mutable {
    done(std::move(status));
  });
}

void UcxTransport::Complete(uint64_t op_id, absl::Status status) {
  auto it = ops_.find(op_id);
  if (it == ops_.end()) return;
  Op op = std::move(it->second);
  ops_.erase(it);
  if (!status.ok()) {
    stats_.failures.fetch_add(1, std::memory_order_relaxed);
  } else if (op.kind == OpKind::kFetch || op.kind == OpKind::kRead) {
    (op.kind == OpKind::kFetch ? stats_.fetches : stats_.reads).fetch_add(1);
    stats_.bytes_fetched.fetch_add(op.len, std::memory_order_relaxed);
  } else if (op.kind == OpKind::kReply) {
    stats_.bytes_served.fetch_add(op.len, std::memory_order_relaxed);
  }
  deferred_.push_back([done = std::move(op.done), status = std::move(status)]() mutable {
    done(std::move(status));
  });
}

void UcxTransport::FailPeerOps(NodeId peer, const absl::Status& status) {
  std::vector<uint64_t> ids;
  for (auto& [id, op] : ops_) {
    if (op.peer != peer) continue;
    if (op.in_flight) {
      if (op.doomed.ok()) op.doomed = status;  // completes when UCX releases the request
    } else {
      ids.push_back(id);
    }
  }
  for (uint64_t id : ids) Complete(id, status);
}

void UcxTransport::DropConnection(NodeId peer) {
  auto it = conns_.find(peer);
  if (it == conns_.end()) return;
  it->second.rkeys.clear();
  it->second.ep.Reset();
  it->second.ctx = nullptr;
}

absl::StatusOr<PeerConn*> UcxTransport::Connect(NodeId peer, OpKind kind) {
  auto it = conns_.find(peer);
  if (it == conns_.end()) {
    return absl::UnavailableError(absl::StrCat("ucx: ", OpName(kind), " node ", peer,
                                               ": unknown peer (not added)"));
  }
  PeerConn& conn = it->second;
  if (conn.ep) return &conn;
  auto ctx = std::make_unique<EpContext>(EpContext{this, peer, next_generation_++});
  auto ep = ucx::UcxEndpoint::Create(worker_.get(), conn.worker_address, &OnEpError, ctx.get());
  if (!ep.ok()) {
    return Prefixed(ep.status(), absl::StrCat("ucx: ", OpName(kind), " node ", peer, ": "));
  }
  conn.ep = *std::move(ep);
  conn.ctx = ctx.get();
  ep_contexts_.push_back(std::move(ctx));
  return &conn;
}

ucp_request_param_t UcxTransport::SendParam(Ticket* t, uint32_t am_flags) const {
  ucp_request_param_t p = {};
  p.op_attr_mask =
      UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  p.cb.send = &OnSendDone;
  p.user_data = t;
  p.flags = am_flags;
  return p;
}

void UcxTransport::AddMemh(RegionId region, ucp_request_param_t* param) const {
  if (region == kNoRegion || region > memhs_.size()) return;   // an empty slice
  param->op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
  param->memh = memhs_[region - 1].get();
}

void UcxTransport::Track(ucs_status_ptr_t req, Ticket* t) {
  if (req == nullptr || UCS_PTR_IS_ERR(req)) {  // done at once: UCX calls no callback
    OnUcxDone(t, req == nullptr ? UCS_OK : UCS_PTR_STATUS(req));
    delete t;
  }
  // Otherwise OnSendDone / OnRecvDone frees the ticket and the request.
}

void UcxTransport::OnUcxDone(Ticket* t, ucs_status_t status) {
  auto it = ops_.find(t->op_id);
  if (it == ops_.end()) return;  // already failed (peer failure) or nothing to complete
  Op& op = it->second;
  if (t->errors_only) {
    if (status != UCS_OK && !op.in_flight) Complete(t->op_id, OpError(op.kind, op.peer, status));
    return;
  }
  op.in_flight = false;
  absl::Status result = !op.doomed.ok()     ? op.doomed
                        : status == UCS_OK ? absl::OkStatus()
                                           : OpError(op.kind, op.peer, status);
  Complete(t->op_id, std::move(result));
}

// ---- operations -------------------------------------------------------------------------------

void UcxTransport::StartFetch(uint64_t id, NodeId peer, std::string header, LocalSlice slice, Done done) {
  std::string prefix = absl::StrCat("ucx: fetch from node ", peer, ": ");
  if (stopping_) return FailNow(std::move(done), absl::CancelledError(prefix + "shut down"));
  if (header.size() > ucx::kMaxFetchHeaderBytes) {
    return FailNow(std::move(done),
                   absl::InvalidArgumentError(absl::StrCat(prefix, "header of ", header.size(), " bytes (max ",
                                                           ucx::kMaxFetchHeaderBytes, ")")));
  }
  absl::StatusOr<uint8_t*> dst = regions_.Resolve(slice, "fetch from", peer);
  if (!dst.ok()) return FailNow(std::move(done), dst.status());
  const size_t len = slice.length;
  auto conn = Connect(peer, OpKind::kFetch);
  if (!conn.ok()) return FailNow(std::move(done), conn.status());
  AddOp(Op{OpKind::kFetch, peer, *dst, len, std::move(done), slice.region}, id);
  auto* t = new Ticket{this, id, /*errors_only=*/true,
                       ucx::EncodeHeader(ucx::RequestHeader{id, options_.self, len}), std::move(header)};
  ucp_request_param_t p = SendParam(t, UCP_AM_SEND_FLAG_EAGER);
  Track(ucp_am_send_nbx((*conn)->ep.get(), ucx::kFetchRequestAm, t->header.data(),
                        t->header.size(), t->payload.data(), t->payload.size(), &p),
        t);
}

// A fetch whose reply has not arrived completes now; HandleReply then drops the late reply
// (rendezvous: rejected, so the sender's send fails and nothing is received). A fetch whose
// rendezvous receive is in progress is doomed to CANCELLED and completes when UCX releases
// the receive. ucp_request_cancel is asked to end that receive early, but UCX (1.13 and
// later) cancels only tag receives, so in practice the receive runs to its end or until
// the connection fails or is reset (ResetPeer).
void UcxTransport::CancelOnThread(uint64_t id) {
  auto it = ops_.find(id);
  if (it == ops_.end() || it->second.kind != OpKind::kFetch) return;
  Op& op = it->second;
  absl::Status why = absl::CancelledError(absl::StrCat("ucx: fetch from node ", op.peer, ": cancelled"));
  if (!op.in_flight) return Complete(id, std::move(why));
  if (op.doomed.ok()) op.doomed = std::move(why);
  if (op.request != nullptr) ucp_request_cancel(worker_.get(), op.request);
}

// Force-closes the endpoint (UCX completes the requests on it with an error) and fails every
// operation to the peer; in-flight ones complete when UCX releases their requests.
void UcxTransport::ResetOnThread(NodeId peer) {
  absl::Status why = absl::UnavailableError(absl::StrCat("ucx: connection to node ", peer, " was reset"));
  DropConnection(peer);
  for (auto& [id, op] : ops_) {
    if (op.peer == peer && op.request != nullptr) ucp_request_cancel(worker_.get(), op.request);
  }
  FailPeerOps(peer, why);
}

// Checks the remote key and both ranges before anything is posted.
static absl::Status CheckRead(NodeId peer, const RemoteSlice& src, const absl::StatusOr<RemoteKey>& key,
                       const LocalSlice& dst) {
  auto op = [peer] { return absl::StrCat("read from node ", peer); };   // built only on failure
  if (key.ok() && key->kind == MemoryKind::kHost && src.length == dst.length && src.offset <= key->length &&
      src.length <= key->length - src.offset) {
    return absl::OkStatus();
  }
  if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("ucx: ", op(), ": ", key.status().message()));
  if (absl::Status s = CheckSupportedKind(key->kind, absl::StrCat("ucx: ", op())); !s.ok()) return s;
  if (src.length != dst.length) {
    return absl::InvalidArgumentError(
        absl::StrCat("ucx: ", op(), ": source of ", src.length, " bytes into a destination of ", dst.length));
  }
  return CheckRange(absl::StrCat("ucx: ", op(), ": remote region"), key->length, src.offset, src.length);
}

void UcxTransport::StartRead(NodeId peer, RemoteSlice src, LocalSlice slice, Done done) {
  std::string prefix = absl::StrCat("ucx: read from node ", peer, ": ");
  if (stopping_) return FailNow(std::move(done), absl::CancelledError(prefix + "shut down"));
  absl::StatusOr<uint8_t*> dst = regions_.Resolve(slice, "read from", peer);
  if (!dst.ok()) return FailNow(std::move(done), dst.status());
  absl::StatusOr<RemoteKey> key = DecodeRemoteKey(src.remote_key);
  if (absl::Status s = CheckRead(peer, src, key, slice); !s.ok()) return FailNow(std::move(done), s);
  const size_t len = slice.length;
  auto conn = Connect(peer, OpKind::kRead);
  if (!conn.ok()) return FailNow(std::move(done), conn.status());
  uint64_t id = AddOp(Op{OpKind::kRead, peer, *dst, len, std::move(done), slice.region});
  if (len == 0) return Complete(id, absl::OkStatus());
  auto rit = (*conn)->rkeys.find(key->transport_key);
  if (rit == (*conn)->rkeys.end()) {
    auto rkey = ucx::UcxRkey::Unpack((*conn)->ep.get(), key->transport_key);
    if (!rkey.ok()) return Complete(id, Prefixed(rkey.status(), prefix));
    rit = (*conn)->rkeys.emplace(std::move(key->transport_key), *std::move(rkey)).first;
  }
  ops_.at(id).in_flight = true;
  auto* t = new Ticket{this, id, false, {}, {}};
  ucp_request_param_t p = SendParam(t, 0);
  AddMemh(slice.region, &p);
  Track(ucp_get_nbx((*conn)->ep.get(), *dst, len, key->address + src.offset, rit->second.get(), &p), t);
}

void UcxTransport::StartControl(NodeId peer, std::string bytes, Done done) {
  std::string prefix = absl::StrCat("ucx: control message to node ", peer, ": ");
  if (stopping_) return FailNow(std::move(done), absl::CancelledError(prefix + "shut down"));
  if (bytes.size() > ucx::kMaxControlBytes) {
    return FailNow(std::move(done), absl::InvalidArgumentError(absl::StrCat(
                                        prefix, bytes.size(), " bytes exceeds the limit of ",
                                        ucx::kMaxControlBytes)));
  }
  auto conn = Connect(peer, OpKind::kControl);
  if (!conn.ok()) return FailNow(std::move(done), conn.status());
  uint64_t id = AddOp(Op{OpKind::kControl, peer, nullptr, 0, std::move(done)});
  auto* t = new Ticket{this, id, false, ucx::EncodeHeader(ucx::ControlHeader{options_.self}),
                       std::move(bytes)};
  ucp_request_param_t p = SendParam(t, UCP_AM_SEND_FLAG_EAGER);
  Track(ucp_am_send_nbx((*conn)->ep.get(), ucx::kControlAm, t->header.data(), t->header.size(),
                        t->payload.data(), t->payload.size(), &p),
        t);
}

void UcxTransport::StartReply(NodeId peer, uint64_t request_id, size_t expected, LocalSlice slice, Done sent) {
  std::string prefix = absl::StrCat("ucx: fetch reply to node ", peer, ": ");
  if (stopping_) return FailNow(std::move(sent), absl::CancelledError(prefix + "shut down"));
  absl::StatusOr<uint8_t*> resolved = regions_.Resolve(slice, "fetch reply to", peer);
  if (!resolved.ok()) {
    StartFail(peer, request_id,
              absl::InternalError(absl::StrCat("ucx: the server's reply was refused: ", resolved.status().message())));
    return FailNow(std::move(sent), resolved.status());
  }
  const void* src = *resolved;
  const size_t len = slice.length;
  if (len != expected) {
    std::string why = absl::StrCat(prefix, "reply of ", len, " bytes to a request for ", expected);
    StartFail(peer, request_id, absl::InternalError(why));
    return FailNow(std::move(sent), absl::InvalidArgumentError(why));
  }
  auto conn = Connect(peer, OpKind::kReply);
  if (!conn.ok()) return FailNow(std::move(sent), conn.status());
  Op op{OpKind::kReply, peer, nullptr, len, std::move(sent)};
  op.in_flight = true;  // UCX reads `src` until the send completes
  uint64_t id = AddOp(std::move(op));
  auto* t = new Ticket{this, id, false,
                       ucx::EncodeHeader(ucx::ReplyHeader{request_id, options_.self, 0, 0, len}), {}};
  // Large replies go rendezvous so the requester pulls them straight into its destination.
  uint32_t flags = len > options_.rndv_threshold ? UCP_AM_SEND_FLAG_RNDV : UCP_AM_SEND_FLAG_EAGER;
  ucp_request_param_t p = SendParam(t, flags);
  AddMemh(slice.region, &p);
  Track(ucp_am_send_nbx((*conn)->ep.get(), ucx::kFetchReplyAm, t->header.data(),
                        t->header.size(), src, len, &p),
        t);
}

void UcxTransport::StartFail(NodeId peer, uint64_t request_id, absl::Status status) {
  if (stopping_) return;
  auto conn = Connect(peer, OpKind::kReply);
  if (!conn.ok()) return;  // the requester learns from its own connection failure
  int32_t code = status.ok() ? static_cast<int32_t>(absl::StatusCode::kUnknown)
                             : static_cast<int32_t>(status.code());
  auto* t = new Ticket{this, 0, false,
                       ucx::EncodeHeader(ucx::ReplyHeader{request_id, options_.self, code, 0, 0}),
                       std::string(status.message())};
  ucp_request_param_t p = SendParam(t, UCP_AM_SEND_FLAG_EAGER);
  Track(ucp_am_send_nbx((*conn)->ep.get(), ucx::kFetchReplyAm, t->header.data(),
                        t->header.size(), t->payload.data(), t->payload.size(), &p),
        t);
}

void UcxTransport::HandlePeerFailure(NodeId peer, uint64_t generation, ucs_status_t status) {
  auto it = conns_.find(peer);
  if (it == conns_.end() || it->second.ctx == nullptr ||
      it->second.ctx->generation != generation) {
    return;  // an endpoint we already dropped
  }
  absl::Status why = absl::UnavailableError(
      absl::StrCat("ucx: ", ucx::ConnectionLost(peer, status).message()));
  DropConnection(peer);  // force close; the next operation reconnects
  stats_.peer_failures.fetch_add(1, std::memory_order_relaxed);
  FailPeerOps(peer, why);
  if (failure_handler_) {
    deferred_.push_back([this, peer, why]() mutable { failure_handler_(peer, why); });
  }
}

// ---- UCX callbacks ----------------------------------------------------------------------------

void UcxTransport::OnEpError(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
  auto* ctx = static_cast<EpContext*>(arg);
  UcxTransport* t = ctx->transport;
  // Not handled here: we are inside ucp_worker_progress, and closing the endpoint now
  // would re-enter UCX.
  t->deferred_.push_back([t, peer = ctx->peer, gen = ctx->generation, status] {
    t->HandlePeerFailure(peer, gen, status);
  });
}

void UcxTransport::OnSendDone(void* request, ucs_status_t status, void* user_data) {
  auto* t = static_cast<Ticket*>(user_data);
  t->transport->OnUcxDone(t, status);
  delete t;
  ucp_request_free(request);
}

void UcxTransport::OnRecvDone(void* request, ucs_status_t status, size_t /*length*/,
                              void* user_data) {
  OnSendDone(request, status, user_data);
}

ucs_status_t UcxTransport::OnRequestAm(void* arg, const void* header, size_t header_length,
                                       void* data, size_t length,
                                       const ucp_am_recv_param_t* param) {
  auto* t = static_cast<UcxTransport*>(arg);
  if (t->stopping_) return UCS_OK;
  const std::optional<ucx::RequestHeader> decoded =
      ucx::DecodeHeader<ucx::RequestHeader>(header, header_length);
  if (!decoded || (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)) {
    t->stats_.dropped_requests.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("ucx: dropped a malformed fetch request ({} header bytes)", header_length);
    return UCS_OK;  // malformed (for RNDV: returning OK drops the descriptor)
  }
  const ucx::RequestHeader& h = *decoded;
  const std::string_view payload(static_cast<const char*>(data), length);
  if (!t->conns_.contains(h.requester)) {  // data-plane traffic only from registered nodes
    t->Hold({true, h.requester, h.request_id, static_cast<size_t>(h.length), std::string(payload), {}});
    return UCS_OK;
  }
  t->ServeFetch(h.requester, h.request_id, static_cast<size_t>(h.length), payload);
  return UCS_OK;
}

// Runs the FetchHandler, inside progress or (for a held request) from AddPeer's task on the
// same thread; `header` is only valid during this call.
void UcxTransport::ServeFetch(NodeId requester, uint64_t request_id, size_t length,
                              std::string_view header) {
  auto responder = std::make_unique<UcxResponder>(queue_, this, requester, request_id, length);
  if (!fetch_handler_) {
    responder->Fail(absl::UnimplementedError(
        absl::StrCat("ucx: node ", options_.self, " serves no fetches (no handler)")));
    return;
  }
  fetch_handler_(requester, header, std::move(responder));
}

void UcxTransport::DeliverControl(NodeId sender, std::string_view bytes) {
  if (control_handler_) control_handler_(sender, bytes);
}

// ---- messages from nodes not added yet ------------------------------------------------------

void UcxTransport::Hold(HeldMessage m) {
  if (options_.unknown_peer_wait_ms == 0) return DropHeld(m, "is not a registered peer");
  if (held_.size() >= kMaxHeld || held_bytes_ + m.payload.size() > kMaxHeldBytes) {
    return DropHeld(m, absl::StrCat("is not a registered peer, and ", held_.size(),
                                    " messages from such nodes are already held"));
  }
  m.expires = Clock::now() + std::chrono::milliseconds(options_.unknown_peer_wait_ms);
  held_bytes_ += m.payload.size();
  spdlog::debug("ucx: holding a {} from node {} until it is a registered peer",
                m.is_fetch ? "fetch request" : "control message", m.from);
  held_.push_back(std::move(m));
}

// `peer` was just added: serve what it sent before, in arrival order.
void UcxTransport::ReleaseHeld(NodeId peer) {
  std::vector<HeldMessage> mine;
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->from != peer) {
      ++it;
      continue;
    }
    held_bytes_ -= it->payload.size();
    mine.push_back(std::move(*it));
    it = held_.erase(it);
  }
  for (const HeldMessage& m : mine) {
    if (m.is_fetch) {
      ServeFetch(m.from, m.request_id, m.length, m.payload);
    } else {
      DeliverControl(m.from, m.payload);
    }
  }
}

void UcxTransport::ExpireHeld() {
  const auto now = Clock::now();
  while (!held_.empty() && held_.front().expires <= now) {
    held_bytes_ -= held_.front().payload.size();
    DropHeld(held_.front(), absl::StrCat("did not become a registered peer within ",
                                         options_.unknown_peer_wait_ms, " ms"));
    held_.pop_front();
  }
}

void UcxTransport::DropHeld(const HeldMessage& m, std::string_view why) {
  stats_.dropped_requests.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("ucx: dropped a {} from node {}, which {}",
               m.is_fetch ? "fetch request" : "control message", m.from, why);
}

ucs_status_t UcxTransport::OnReplyAm(void* arg, const void* header, size_t header_length,
                                     void* data, size_t length,
                                     const ucp_am_recv_param_t* param) {
  auto* t = static_cast<UcxTransport*>(arg);
  bool rndv = (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0;
  const std::optional<ucx::ReplyHeader> h = ucx::DecodeHeader<ucx::ReplyHeader>(header, header_length);
  if (t->stopping_ || !h) return rndv ? UCS_ERR_CANCELED : UCS_OK;
  return t->HandleReply(*h, data, length, rndv);
}

ucs_status_t UcxTransport::HandleReply(const ucx::ReplyHeader& h, void* data, size_t length,
                                       bool rndv) {
  // For a rendezvous reply we do not take, a non-OK return drops the descriptor and fails
  // the sender's send with that status.
  const ucs_status_t reject = rndv ? UCS_ERR_CANCELED : UCS_OK;
  auto it = ops_.find(h.request_id);
  if (it == ops_.end() || it->second.kind != OpKind::kFetch || it->second.peer != h.responder ||
      it->second.in_flight) {
    return reject;  // late reply to a fetch that already failed
  }
  Op& op = it->second;
  if (h.code != 0) {
    std::string msg = rndv ? std::string() : std::string(static_cast<const char*>(data), length);
    Complete(h.request_id, absl::Status(ucx::ReplyErrorCode(h.code), msg));
    return reject;
  }
  if (h.length != op.len || length != op.len) {
    Complete(h.request_id,
             absl::InternalError(absl::StrCat("ucx: fetch from node ", op.peer, ": reply of ",
                                              length, " bytes to a request for ", op.len)));
    return reject;
  }
  if (!rndv) {
    if (length > 0) std::memcpy(op.dst, data, length);
    Complete(h.request_id, absl::OkStatus());
    return UCS_OK;
  }
  // Rendezvous: pull the payload straight into the caller's destination.
  op.in_flight = true;
  auto* t = new Ticket{this, h.request_id, false, {}, {}};
  ucp_request_param_t p = {};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.cb.recv_am = &OnRecvDone;
  p.user_data = t;
  if (streaming_dt_ && op.len >= options_.streaming_copy_min) {
    p.op_attr_mask |= UCP_OP_ATTR_FIELD_DATATYPE;   // UCX unpacks each fragment through us
    p.datatype = *streaming_dt_;
  } else {
    AddMemh(op.region, &p);
  }
  ucs_status_ptr_t req = ucp_am_recv_data_nbx(worker_.get(), data, op.dst, op.len, &p);
  if (UCS_PTR_IS_PTR(req)) op.request = req;   // OnRecvDone frees it and completes the op
  Track(req, t);
  return UCS_INPROGRESS;  // UCX owns the descriptor now (ucp_am_recv_data_nbx took it)
}

ucs_status_t UcxTransport::OnControlAm(void* arg, const void* header, size_t header_length,
                                       void* data, size_t length,
                                       const ucp_am_recv_param_t* param) {
  auto* t = static_cast<UcxTransport*>(arg);
  const std::optional<ucx::ControlHeader> decoded =
      ucx::DecodeHeader<ucx::ControlHeader>(header, header_length);
  if (t->stopping_ || !decoded || (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)) {
    return UCS_OK;
  }
  const ucx::ControlHeader& h = *decoded;
  const std::string_view bytes(static_cast<const char*>(data), length);
  if (!t->conns_.contains(h.sender)) {
    t->Hold({false, h.sender, 0, 0, std::string(bytes), {}});
    return UCS_OK;
  }
  t->DeliverControl(h.sender, bytes);
  return UCS_OK;
}

}  // namespace ferry::dataplane::ucx_internal
