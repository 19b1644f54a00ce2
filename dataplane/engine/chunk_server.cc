#include "dataplane/engine/chunk_server.h"

#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "dataplane/engine/chunk_request.h"
#include "dataplane/engine/pack_buffers.h"

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

absl::Status ChunkServer::ServeError(const std::string& ns, const std::string& key, const absl::Status& why) const {
  // The requester's Get ends on a deletion, so say where it happened.
  if (IsObjectDeleted(why)) return ObjectDeletedError(ns, key, absl::StrCat("on node ", self_.load()));
  return why;
}

void ChunkServer::Handle(NodeId from, std::string_view header, std::unique_ptr<FetchResponder> responder) {
  if (FetchRequestVersion(header) == kPackRequestVersion) {
    HandlePack(from, header, std::move(responder));
    return;
  }
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
          responder->Fail(ServeError(ns, key, slice.status()));
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

// One pack request in progress: the slices of its objects as they become servable.
struct ChunkServer::Pack {
  PackRequest req;
  std::unique_ptr<FetchResponder> responder;
  absl::Mutex mu;
  std::vector<std::optional<ServeSlice>> slices ABSL_GUARDED_BY(mu);
  size_t waiting ABSL_GUARDED_BY(mu) = 0;
  absl::Status failed ABSL_GUARDED_BY(mu);
};

void ChunkServer::HandlePack(NodeId from, std::string_view header, std::unique_ptr<FetchResponder> responder) {
  absl::StatusOr<PackRequest> req = DecodePackRequest(header);
  absl::Status refused;
  if (!req.ok()) {
    refused = absl::InvalidArgumentError(absl::StrCat("from node ", from, ": ", req.status().message()));
  } else if (options_.packs == nullptr || options_.arena_base == nullptr) {
    refused = absl::UnimplementedError(absl::StrCat("node ", self_.load(), " serves no pack requests"));
  } else if (req->bytes() > options_.packs->slot_bytes()) {
    refused = absl::InvalidArgumentError(absl::StrCat("from node ", from, ": a pack of ", req->bytes(),
                                                      " bytes is larger than this node's pack buffers (",
                                                      options_.packs->slot_bytes(), " bytes)"));
  }
  if (!refused.ok()) {
    ++rejected_;
    responder->Fail(refused);
    return;
  }
  auto pack = std::make_shared<Pack>();
  pack->req = *std::move(req);
  pack->responder = std::move(responder);
  const size_t n = pack->req.entries.size();
  {
    absl::MutexLock lock(&pack->mu);
    pack->slices.resize(n);
    pack->waiting = n;
  }
  const absl::Time absent_until = absl::Now() + options_.absent_wait;
  bool any_held = false;
  for (size_t i = 0; i < n; ++i) {
    const PackEntry& entry = pack->req.entries[i];
    any_held |= store_->ServeChunk(
        pack->req.ns, entry.key, kWholeObject, 0,
        [this, pack, i](absl::StatusOr<ServeSlice> slice) {
          const PackEntry& e = pack->req.entries[i];
          bool last = false;
          {
            absl::MutexLock lock(&pack->mu);
            if (!slice.ok()) {
              if (pack->failed.ok()) pack->failed = ServeError(pack->req.ns, e.key, slice.status());
            } else if (slice->len != e.size) {
              if (pack->failed.ok()) {
                pack->failed = absl::FailedPreconditionError(absl::StrCat(
                    "object ", PrintableName(pack->req.ns, e.key), " has ", slice->len, " bytes on node ",
                    self_.load(), ", the pack request says ", e.size));
              }
              store_->UnpinServe(*slice);
            } else {
              pack->slices[i] = *slice;
            }
            last = --pack->waiting == 0;
          }
          if (last) FinishPack(pack);
        },
        absent_until);
  }
  if (any_held) {
    ++held_;
    WakeTimerBy(absent_until);
  }
}

void ChunkServer::FinishPack(const std::shared_ptr<Pack>& pack) {
  absl::Status failed;
  {
    absl::MutexLock lock(&pack->mu);
    failed = pack->failed;
  }
  auto unpin_all = [this, pack] {
    absl::MutexLock lock(&pack->mu);
    for (std::optional<ServeSlice>& s : pack->slices) {
      if (s) store_->UnpinServe(*s);
      s.reset();
    }
  };
  if (!failed.ok()) {
    unpin_all();
    ++rejected_;
    pack->responder->Fail(failed);
    return;
  }
  options_.packs->AcquireAsync([this, pack, unpin_all](absl::StatusOr<PackBuffers::Slot> slot) {
    if (!slot.ok()) {
      unpin_all();
      ++rejected_;
      pack->responder->Fail(slot.status());
      return;
    }
    uint64_t at = 0;
    {
      absl::MutexLock lock(&pack->mu);
      uint8_t* out = options_.packs->data(*slot);
      for (std::optional<ServeSlice>& s : pack->slices) {
        if (s->len > 0) std::memcpy(out + at, options_.arena_base + s->offset, s->len);
        at += s->len;
      }
    }
    unpin_all();   // the bytes are in the pack buffer now
    ++packs_served_;
    chunks_served_ += pack->req.entries.size();
    bytes_served_ += at;
    PackBuffers* packs = options_.packs;
    const PackBuffers::Slot held = *slot;
    pack->responder->Reply(packs->slice(held, at), [packs, held](absl::Status) { packs->Release(held); });
  });
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
