#include "control/cluster/node_session.h"

#include "spdlog/spdlog.h"

namespace ferry::control {

NodeSession* NodeSession::Start(grpc::CallbackServerContext* ctx, SessionHost* host, QueueLimits limits) {
  auto* s = new NodeSession(ctx, host, limits);
  s->self_.reset(s);
  s->StartRead(&s->in_);
  return s;
}

NodeSession::NodeSession(grpc::CallbackServerContext* ctx, SessionHost* host, QueueLimits limits)
    : ctx_(ctx), host_(host), peer_(ctx->peer()), queue_(limits) {}

bool NodeSession::Send(OutQueue::Message msg, size_t bytes, std::string* why) {
  absl::MutexLock lock(&mu_);
  if (ending_ || done_) return true;   // the stream is going; nothing more reaches the node
  return queue_.Push(std::move(msg), bytes, why);
}

void NodeSession::Flush() {
  OutQueue::Message next;
  {
    absl::MutexLock lock(&mu_);
    if (ending_ || done_) return;
    next = queue_.StartNext();
  }
  // The queue keeps `next` alive until WriteDone; only the holder of the one in-flight slot
  // writes, so messages go out in queue order.
  if (next != nullptr) StartWrite(next.get());
}

void NodeSession::OnWriteDone(bool ok) {
  OutQueue::Message next;
  {
    absl::MutexLock lock(&mu_);
    // A failed write ends the session: the next message must not become in flight without
    // being written, or MaybeFinish would wait for its WriteDone forever.
    if (!ok || ending_) {
      queue_.Retire();
    } else {
      next = queue_.WriteDone();
    }
  }
  if (!ok) {
    End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write to the node failed"), "a write to it failed");
    return;
  }
  if (next != nullptr) {
    StartWrite(next.get());
  } else {
    MaybeFinish();
  }
}

void NodeSession::OnReadDone(bool ok) {
  if (!ok) {
    End(grpc::Status::OK, "its session closed");
    return;
  }
  if (!hello_seen_) {
    hello_seen_ = true;
    if (!in_.has_hello()) {
      End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of a session must be Hello"), "");
      return;
    }
    // The pin holds Finish off until acceptance is settled, so an end that races with it
    // (a cancel from the client, a failed write) is still reported before the status goes.
    if (!Pin()) return;
    grpc::Status s = host_->OnHello(self_, in_.hello());
    if (!s.ok()) {
      spdlog::warn("rejected registration of node '{}' ({}) from {}: {}", in_.hello().node().name(),
                   in_.hello().node().node_id(), peer_, s.error_message());
      End(s, "");
      Unpin();
      return;
    }
    accepted_.store(true);
    // An End meanwhile found accepted_ false and reported nothing: report it now, so the node
    // just registered is not left alive behind a finished stream.
    bool ended;
    {
      absl::MutexLock lock(&mu_);
      ended = ending_;
    }
    if (ended) ReportEnd("its session closed");
    Unpin();
    if (ended) return;
  } else if (!host_->OnNodeMessage(this, in_)) {
    End(grpc::Status::OK, "");
    return;
  }
  if (!Pin()) return;   // finished meanwhile (cancelled): no more reads
  StartRead(&in_);
  Unpin();
}

void NodeSession::OnCancel() { End(grpc::Status(grpc::StatusCode::CANCELLED, "session cancelled"), "its session closed"); }

void NodeSession::Cancel() {
  End(grpc::Status(grpc::StatusCode::CANCELLED, "the coordinator ended this session"), "");
  // TryCancel breaks a write a slow reader holds up. The pin keeps Finish (and so OnDone,
  // which frees ctx_) from happening meanwhile; TryCancel may run OnCancel inline, so no
  // lock is held across it.
  if (!Pin()) return;
  ctx_->TryCancel();
  Unpin();
}

bool NodeSession::Pin() {
  absl::MutexLock lock(&mu_);
  if (finished_) return false;
  ++pins_;
  return true;
}

void NodeSession::Unpin() {
  {
    absl::MutexLock lock(&mu_);
    --pins_;
  }
  MaybeFinish();
}

void NodeSession::End(grpc::Status status, const std::string& why) {
  {
    absl::MutexLock lock(&mu_);
    if (!ending_) {
      ending_ = true;
      end_status_ = std::move(status);
      queue_.Clear();
    }
  }
  // Every end of an accepted session is reported before Finish can send its status, so a
  // node is never seen alive after its session's client has seen the stream end. The host
  // ignores the report where the session is no longer its node's current one (the ends
  // with no reason of their own: the coordinator cancelling a node it declared dead, a
  // stale session's heartbeat).
  if (accepted_.load()) ReportEnd(why.empty() ? "its session ended" : why);
  MaybeFinish();
}

void NodeSession::MaybeFinish() {
  grpc::Status status;
  {
    absl::MutexLock lock(&mu_);
    if (!ending_ || finished_ || pins_ > 0 || queue_.in_flight()) return;
    finished_ = true;
    status = end_status_;
  }
  Finish(status);
}

void NodeSession::ReportEnd(const std::string& why) {
  if (!end_reported_.exchange(true)) host_->OnSessionEnd(this, why);
}

void NodeSession::OnDone() {
  if (accepted_.load()) ReportEnd("its session closed");
  std::shared_ptr<NodeSession> self;
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
    self = std::move(self_);
  }
  // `self` goes here: the session is freed now unless the host still holds it.
}

}  // namespace ferry::control
