#include "dataplane/engine/chunk_server.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "dataplane/engine/chunk_request.h"

namespace ferry::dataplane {

ChunkServer::ChunkServer(ObjectStore* store, RegionId arena, ChunkServerOptions options)
    : store_(store), arena_(arena), options_(options), timer_([this] { TimerLoop(); }) {}

ChunkServer::~ChunkServer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  timer_.join();
  // Held requests point at this server: answer them now, before it goes.
  store_->ExpireAbsentWaiters(absl::InfiniteFuture());
}

void ChunkServer::Attach(Transport* transport) {
  self_ = transport->self();
  transport->SetFetchHandler([this](NodeId from, std::string_view header, std::unique_ptr<FetchResponder> r) {
    Handle(from, header, std::move(r));
  });
}

void ChunkServer::Handle(NodeId from, std::string_view header, std::unique_ptr<FetchResponder> responder) {
  absl::StatusOr<ChunkRequest> req = DecodeChunkRequest(header);
  if (!req.ok()) {
    ++rejected_;
    responder->Fail(absl::InvalidArgumentError(absl::StrCat("from node ", from, ": ", req.status().message())));
    return;
  }
  const absl::Time absent_until = absl::Now() + options_.absent_wait;
  const bool held = store_->ServeChunk(
      req->ns, req->key, req->chunk_size, req->chunk,
      [this, ns = req->ns, key = req->key, responder = std::move(responder)](
          absl::StatusOr<ServeSlice> slice) mutable {
        if (!slice.ok()) {
          ++rejected_;
          if (IsObjectDeleted(slice.status())) {   // the requester's Get ends on this
            responder->Fail(ObjectDeletedError(ns, key, absl::StrCat("on node ", self_.load())));
          } else {
            responder->Fail(slice.status());
          }
          return;
        }
        ++chunks_served_;
        bytes_served_ += slice->len;
        ServeSlice held_slice = *slice;
        responder->Reply(LocalSlice{arena_, slice->offset, slice->len},
                         [this, held_slice](absl::Status) { store_->UnpinServe(held_slice); });
      },
      absent_until);
  if (held) {
    ++held_;
    WakeTimerBy(absent_until);
  }
}

void ChunkServer::WakeTimerBy(absl::Time until) {
  absl::MutexLock lock(&mu_);
  if (until < timer_at_) timer_at_ = until;   // the timer thread waits on this condition
}

void ChunkServer::TimerLoop() {
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    const absl::Time at = timer_at_;
    // Sleep until `at`, or until a wake moves timer_at_ earlier, or stop.
    auto moved = [this, at]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || timer_at_ < at; };
    if (mu_.AwaitWithDeadline(absl::Condition(&moved), at) || stop_) continue;
    if (absl::Now() < timer_at_) continue;   // woke early (spurious): wait again
    timer_at_ = absl::InfiniteFuture();
    mu_.Unlock();
    const absl::Time next = store_->ExpireAbsentWaiters(absl::Now());
    mu_.Lock();
    if (next < timer_at_) timer_at_ = next;
  }
}

}  // namespace ferry::dataplane
