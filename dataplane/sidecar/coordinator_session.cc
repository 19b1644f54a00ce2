#include "dataplane/sidecar/coordinator_session.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {
namespace {

// Codes with which a coordinator refuses a registration for good (not "try again").
bool IsRefusal(absl::StatusCode code) {
  return code == absl::StatusCode::kAlreadyExists || code == absl::StatusCode::kUnauthenticated ||
         code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kPermissionDenied;
}

}  // namespace

CoordinatorSession::CoordinatorSession(SessionDeps deps) : deps_(std::move(deps)) {}

CoordinatorSession::~CoordinatorSession() { Stop(); }

void CoordinatorSession::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void CoordinatorSession::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (stream_ != nullptr) stream_->Cancel();
  }
  if (thread_.joinable()) thread_.join();
}

absl::Status CoordinatorSession::WaitRegistered(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto decided = [this] {
    mu_.AssertHeld();
    return connected_ || !refusal_.ok() || stopping_;
  };
  const bool done = mu_.AwaitWithTimeout(absl::Condition(&decided), timeout);
  if (!refusal_.ok()) return refusal_;
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat("no answer from coordinator ", deps_.client->target(),
                                                    " within ", absl::FormatDuration(timeout), " (still trying)"));
  }
  return absl::OkStatus();
}

bool CoordinatorSession::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

absl::Status CoordinatorSession::refusal() const {
  absl::MutexLock lock(&mu_);
  return refusal_;
}

void CoordinatorSession::Loop() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    const absl::Time began = absl::Now();
    RunSession();
    absl::MutexLock lock(&mu_);
    connected_ = false;
    if (stopping_) break;
    if (absl::Now() - began > absl::Seconds(5)) backoff = absl::Milliseconds(100);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    if (stopping_) break;
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void CoordinatorSession::RunSession() {
  // Built before the stream opens: the holdings are read from the store.
  proto::NodeMessage hello;
  *hello.mutable_hello() = deps_.hello();
  std::unique_ptr<CoordinatorStream> stream = deps_.client->OpenSession();
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      stream->Cancel();
    }
    stream_ = stream.get();
  }
  // A new session (maybe with a restarted coordinator) counts epochs anew: it starts with a
  // snapshot.
  deps_.membership->OnSessionStart();
  {
    absl::MutexLock lock(&write_mu_);
    heartbeat_stop_ = false;
  }
  if (Write(stream.get(), hello)) {
    proto::CoordMessage msg;
    while (stream->Read(&msg)) Dispatch(msg, stream.get());
  }
  StopHeartbeat();
  const absl::Status s = stream->Finish();
  const bool refused = IsRefusal(s.code());
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    stream_ = nullptr;
    stopping = stopping_;
    if (refused) {
      refusal_ = absl::Status(s.code(), absl::StrCat("coordinator ", deps_.client->target(), " refused node '",
                                                     deps_.node_name, "': ", s.message()));
    }
  }
  if (refused) {
    spdlog::error("coordinator {} refused this node's registration: {}", deps_.client->target(),
                  std::string(s.message()));
  } else if (!stopping) {
    spdlog::warn("coordinator session ended: {}", s.ok() ? std::string("closed") : std::string(s.message()));
  }
}

void CoordinatorSession::Dispatch(const proto::CoordMessage& msg, CoordinatorStream* stream) {
  switch (msg.msg_case()) {
    case proto::CoordMessage::kWelcome: {
      const proto::Welcome& w = msg.welcome();
      if (deps_.on_welcome) deps_.on_welcome(w);
      deps_.membership->OnWelcome(w);
      {
        absl::MutexLock lock(&mu_);
        refusal_ = absl::OkStatus();
        connected_ = true;
      }
      spdlog::info("registered with coordinator {} as {} ({})", deps_.client->target(), deps_.node_name,
                   deps_.node_id);
      if (!heartbeat_.joinable()) {
        StartHeartbeat(stream, absl::Milliseconds(std::max<uint32_t>(w.heartbeat_interval_ms(), 10)));
      }
      return;
    }
    case proto::CoordMessage::kMembership:
      if (absl::Status s = deps_.membership->OnMembership(msg.membership()); !s.ok()) {
        // This view can no longer be trusted: end the session; the next one starts with a
        // snapshot.
        spdlog::error("coordinator session: {}; reconnecting for a fresh snapshot", std::string(s.message()));
        stream->Cancel();
        return;
      }
      return;
    case proto::CoordMessage::kPull:
      if (std::optional<proto::ReportTransferRequest> report = deps_.pulls->Handle(msg.pull()); report.has_value()) {
        proto::NodeMessage out;
        *out.mutable_transfer_report() = *report;
        // The stream is going: the RPC still tells the coordinator (or the next session's
        // Hello, which lists the copy).
        if (!Write(stream, out)) deps_.pulls->ReportByRpc(std::move(*out.mutable_transfer_report()));
      }
      return;
    case proto::CoordMessage::kBatchPull:
      if (deps_.batch_pull) deps_.batch_pull(msg.batch_pull());
      return;
    case proto::CoordMessage::kReduce:
      if (deps_.reduce) deps_.reduce(msg.reduce());
      return;
    case proto::CoordMessage::kProgram:
      if (deps_.program) deps_.program(msg.program());
      return;
    case proto::CoordMessage::kProgramEnd:
      if (deps_.program_end) deps_.program_end(msg.program_end());
      return;
    case proto::CoordMessage::kDrop:
      if (std::optional<proto::DropDone> done = deps_.drops->Handle(msg.drop()); done.has_value()) {
        proto::NodeMessage reply;
        *reply.mutable_drop_done() = *done;
        Write(stream, reply);
      }
      return;
    case proto::CoordMessage::kBatchDrop:
      if (std::optional<proto::DropDone> done = deps_.drops->Handle(msg.batch_drop()); done.has_value()) {
        proto::NodeMessage reply;
        *reply.mutable_drop_done() = *done;
        Write(stream, reply);
      }
      return;
    case proto::CoordMessage::MSG_NOT_SET:
      return;   // a kind this node does not know (a newer coordinator): ignored
  }
}

bool CoordinatorSession::Write(CoordinatorStream* stream, const proto::NodeMessage& msg) {
  absl::MutexLock lock(&write_mu_);
  return stream->Write(msg);
}

bool CoordinatorSession::Send(proto::NodeMessage msg) {
  absl::MutexLock lock(&write_mu_);
  if (!writer_live_ || outbox_.size() >= kMaxOutbox) return false;
  outbox_.push_back(std::move(msg));
  return true;
}

void CoordinatorSession::StartHeartbeat(CoordinatorStream* stream, absl::Duration interval) {
  {
    absl::MutexLock lock(&write_mu_);
    writer_live_ = true;
  }
  // The session's writer: heartbeats every `interval`, and whatever Send queued, in order.
  heartbeat_ = std::thread([this, stream, interval] {
    absl::MutexLock lock(&write_mu_);
    absl::Time next_beat = absl::Now();
    uint64_t seq = 0;
    auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) { return heartbeat_stop_ || !outbox_.empty(); };
    while (!heartbeat_stop_) {
      if (absl::Now() >= next_beat) {
        proto::NodeMessage hb;
        *hb.mutable_heartbeat() = deps_.heartbeat();
        hb.mutable_heartbeat()->set_seq(++seq);
        if (!stream->Write(hb)) break;
        deps_.membership->ExpireUnconfirmedPeers();
        next_beat = absl::Now() + interval;
      }
      bool broken = false;
      while (!outbox_.empty() && !heartbeat_stop_) {
        proto::NodeMessage msg = std::move(outbox_.front());
        outbox_.pop_front();
        if (!stream->Write(msg)) {
          broken = true;
          break;
        }
      }
      if (broken) break;
      write_mu_.AwaitWithDeadline(absl::Condition(&wake), next_beat);
    }
  });
}

void CoordinatorSession::StopHeartbeat() {
  {
    absl::MutexLock lock(&write_mu_);
    heartbeat_stop_ = true;
    writer_live_ = false;
    outbox_.clear();   // lost with the stream (documented in Send)
  }
  if (heartbeat_.joinable()) heartbeat_.join();
}

}  // namespace ferry::dataplane
