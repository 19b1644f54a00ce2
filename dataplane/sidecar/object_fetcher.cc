#include "dataplane/sidecar/object_fetcher.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "spdlog/spdlog.h"
#include "xxhash.h"

namespace ferry::dataplane {
namespace {

StoredMeta FromProto(const proto::ObjectMeta& m) {
  return StoredMeta{m.size(), static_cast<uint32_t>(m.dtype()), m.count(), m.incarnation(), m.checksummed(),
                    m.checksum()};
}

}  // namespace

// One FetchRemote across its attempts (one per sender). Lives on FetchRemote's stack.
struct ObjectFetcher::Fetch {
  const std::string& ns;
  const std::string& key;
  absl::Time start, deadline;
  uint64_t op_id;
  std::vector<uint64_t> exclude;      // senders that failed us
  std::optional<PinnedObject> hold;   // our partial copy, pinned while we pull into it
  absl::Status last_failure;
  bool* abort_reported;
  uint64_t incarnation = 0;           // of the copy we are receiving
};

ObjectFetcher::ObjectFetcher(FetchDeps deps, FetchOptions options)
    : deps_(deps), options_(options), puller_(deps.transport, deps.store) {}

void ObjectFetcher::Stop() {
  absl::MutexLock lock(&mu_);   // waiters re-check their condition when the lock is released
  stopping_.store(true);
}

absl::StatusOr<GetResult> ObjectFetcher::Get(const std::string& ns, const std::string& key, SessionId session,
                                             absl::Time deadline, const FetchOrigin& origin, bool* abort_reported) {
  if (absl::Status s = ValidateObjectName(ns, key); !s.ok()) return s;
  FetchOrigin from = origin;
  ObjectStore& store = *deps_.store;
  while (true) {
    absl::StatusOr<PinnedObject> local = store.PinSealed(ns, key, session);
    if (local.ok()) return GetResult{*local};
    if (local.status().code() == absl::StatusCode::kFailedPrecondition) {
      // Being written by a client or received by another Get: wait for the seal.
      absl::StatusOr<PinnedObject> sealed = store.WaitSealed(ns, key, session, deadline);
      if (sealed.ok()) return GetResult{*sealed};
      if (sealed.status().code() != absl::StatusCode::kNotFound) return sealed.status();
      continue;   // it was dropped (failed pull): try again
    }
    const auto k = std::make_pair(ns, key);
    {
      absl::MutexLock lock(&mu_);
      if (pulling_.contains(k)) {
        auto done = [this, &k] {
          mu_.AssertHeld();
          return !pulling_.contains(k) || stopping_.load();
        };
        if (!mu_.AwaitWithDeadline(absl::Condition(&done), deadline)) {
          return absl::DeadlineExceededError(
              absl::StrCat("object ", PrintableName(ns, key), " is still being pulled at the deadline"));
        }
        if (stopping_.load()) return absl::CancelledError("ferryd is shutting down");
        continue;
      }
      pulling_.insert(k);
    }
    absl::StatusOr<GetResult> r = FetchRemote(ns, key, session, deadline, from, abort_reported);
    {
      absl::MutexLock lock(&mu_);
      pulling_.erase(k);
    }
    // The key was put on this node while we waited for a sender: read the local copy.
    if (r.status().code() == absl::StatusCode::kAlreadyExists) {
      from.planned = nullptr;
      continue;
    }
    if (!r.ok()) ++deps_.counters->failures;
    return r;
  }
}

absl::Status ObjectFetcher::EnsurePeer(uint64_t peer, const std::string& address) {
  if (deps_.transport->HasPeer(peer)) return absl::OkStatus();
  return deps_.transport->AddPeer(peer, address);
}

absl::Status ObjectFetcher::StoreInline(const std::string& ns, const std::string& key, const proto::ObjectMeta& m,
                                        absl::string_view data) {
  StoredMeta meta = FromProto(m);
  if (data.size() != meta.size) {
    return absl::InternalError(absl::StrCat("inline copy of ", PrintableName(ns, key), " has ", data.size(),
                                            " bytes, expected ", meta.size));
  }
  ObjectStore& store = *deps_.store;
  // One chunk spanning the whole object (inline objects are at most a few MiB).
  const uint32_t chunk = static_cast<uint32_t>(std::max<uint64_t>(meta.size, 1));
  absl::StatusOr<uint64_t> offset = store.CreateReceiving(ns, key, meta, chunk);
  if (!offset.ok()) return offset.status();
  if (meta.size > 0) std::memcpy(deps_.arena_base + *offset, data.data(), meta.size);
  if (absl::Status v = VerifyChecksum(ns, key, meta, *offset, 0); !v.ok()) {
    store.AbortReceiving(ns, key, v);
    return v;
  }
  store.MarkChunk(ns, key, 0);
  return store.FinishReceiving(ns, key);
}

absl::Status ObjectFetcher::VerifyChecksum(const std::string& ns, const std::string& key, const StoredMeta& meta,
                                           uint64_t offset, uint64_t from) {
  if (!meta.checksummed) return absl::OkStatus();
  const uint64_t got = XXH3_64bits(deps_.arena_base + offset, meta.size);
  if (got == meta.checksum) return absl::OkStatus();
  ++deps_.counters->checksum_mismatches;
  return absl::DataLossError(absl::StrCat("checksum mismatch in the copy of ", PrintableName(ns, key),
                                          from != 0 ? absl::StrCat(" pulled from node ", from) : std::string(" received inline"),
                                          ": bytes hash to ", absl::Hex(got), ", the creator sealed ",
                                          absl::Hex(meta.checksum)));
}

absl::Status ObjectFetcher::AcquireSource(const std::string& ns, const std::string& key,
                                          const std::vector<uint64_t>& exclude, uint64_t incarnation,
                                          absl::Duration remaining, proto::AcquireSourceReply* reply) {
  proto::AcquireSourceRequest req;
  req.set_node_id(deps_.node_id);
  req.set_incarnation(incarnation);
  req.mutable_ref()->set_ns(ns);
  req.mutable_ref()->set_key(key);
  // Rounded up: a wait with less than a millisecond left must not become timeout 0 ("answer
  // what is the case now"), which would say NOT_FOUND before the caller's deadline.
  const int64_t ms = absl::ToInt64Milliseconds(absl::Ceil(remaining, absl::Milliseconds(1)));
  req.set_timeout_ms(static_cast<uint32_t>(std::clamp<int64_t>(ms, 0, 3600000)));
  for (uint64_t id : exclude) req.add_exclude(id);
  deps_.reports->Flush();
  if (stopping_.load()) return absl::CancelledError("ferryd is shutting down");
  return deps_.coordinator->AcquireSource(req, reply);
}

absl::StatusOr<GetResult> ObjectFetcher::FetchRemote(const std::string& ns, const std::string& key,
                                                     SessionId session, absl::Time deadline,
                                                     const FetchOrigin& origin, bool* abort_reported) {
  Fetch f{ns, key, absl::Now(), deadline, origin.op_id, {}, std::nullopt, absl::OkStatus(), abort_reported};
  GetResult result;
  result.pulled = true;
  for (uint32_t attempt = 0;; ++attempt) {
    if (attempt > options_.max_retries) {
      return GiveUp(f, absl::UnavailableError(absl::StrCat("giving up on ", PrintableName(ns, key), " after ",
                                                           attempt - 1, " sender failures")), 0, false);
    }
    const absl::Duration remaining = std::max(deadline - absl::Now(), absl::ZeroDuration());
    // The first attempt always asks the coordinator, so that a zero timeout still learns
    // whether the object exists (NOT_FOUND) rather than failing on the clock alone.
    if (remaining <= absl::ZeroDuration() && attempt > 0) {
      return GiveUp(f, absl::DeadlineExceededError(
          absl::StrCat("get of ", PrintableName(ns, key), " did not finish before the deadline")), 0, false);
    }
    proto::AcquireSourceReply reply;
    const absl::Time asked = absl::Now();
    if (attempt == 0 && origin.planned != nullptr) {
      reply = *origin.planned;   // attached by the coordinator with the instruction
    } else if (absl::Status s = AcquireSource(ns, key, f.exclude, f.hold ? f.incarnation : 0, remaining, &reply);
               !s.ok()) {
      return GiveUp(f, s, 0, false);
    }
    f.incarnation = reply.meta().incarnation();
    if (reply.receiver_has_copy()) {
      return absl::AlreadyExistsError(absl::StrCat(PrintableName(ns, key), " was put on this node meanwhile"));
    }
    if (reply.is_inline()) {
      if (absl::Status s = StoreInline(ns, key, reply.meta(), reply.inline_data()); !s.ok()) {
        if (s.code() == absl::StatusCode::kAlreadyExists) return AlreadyHere(f, s);
        return GiveUp(f, s, 0, true);
      }
      Report(f, 0, proto::ReportTransferRequest::COMPLETED, "", {}, f.incarnation);
      break;
    }
    result.source_node = reply.sender();
    absl::StatusOr<bool> done = PullAttempt(f, reply, asked);
    if (!done.ok()) return done.status();
    if (*done) break;
  }
  if (f.hold) deps_.store->Unpin(*f.hold);
  absl::StatusOr<PinnedObject> pin = deps_.store->PinSealed(ns, key, session);
  if (!pin.ok()) return pin.status();
  result.pin = *pin;
  result.seconds = absl::ToDoubleSeconds(absl::Now() - f.start);
  return result;
}

absl::StatusOr<bool> ObjectFetcher::PullAttempt(Fetch& f, const proto::AcquireSourceReply& reply, absl::Time asked) {
  const std::string& ns = f.ns;
  const std::string& key = f.key;
  ObjectStore& store = *deps_.store;
  if (!f.hold) {
    // Creates the receiving copy and pins it while we pull into it.
    absl::StatusOr<uint64_t> offset = store.CreateReceiving(ns, key, FromProto(reply.meta()), reply.chunk_size());
    absl::StatusOr<PinnedObject> pin = offset.ok() ? store.PinInternal(ns, key) : offset.status();
    if (!pin.ok() && pin.status().code() == absl::StatusCode::kAlreadyExists) return AlreadyHere(f, pin.status());
    if (!pin.ok()) return GiveUp(f, pin.status(), reply.sender(), true);
    f.hold = *pin;
  }
  absl::Status s = EnsurePeer(reply.sender(), reply.sender_address());
  // An invalid sender address (INVALID_ARGUMENT) is that sender's failure: try another.
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) return GiveUp(f, s, reply.sender(), true);
  PullSpec spec{reply.sender(), ns, key, reply.meta().size(), reply.chunk_size(),
                options_.window_override > 0 ? options_.window_override : std::max<uint32_t>(reply.window(), 2),
                LocalSlice{deps_.arena_region, f.hold->offset, reply.meta().size()}, f.deadline,
                options_.max_pull_rate_Bps, &stopping_, /*sink=*/nullptr, /*remote_key=*/{}};
  PullStats stats;
  ++deps_.counters->pulls;
  const absl::Time pull_start = absl::Now();
  if (s.ok()) s = PullFromSender(spec, &stats);
  if (s.ok()) {
    spdlog::debug("get {}: {} B from node {} in {:.3f} ms (before the pull {:.3f} ms, first chunk {:.3f} ms, "
                  "pull {:.3f} ms, chunk {} B, window {})", PrintableName(ns, key), stats.bytes, reply.sender(),
                  absl::ToDoubleMilliseconds(absl::Now() - f.start), absl::ToDoubleMilliseconds(pull_start - asked),
                  stats.first_chunk_s * 1e3, stats.seconds * 1e3, reply.chunk_size(), spec.window);
    deps_.links->Record(PullSample{stats.bytes, stats.seconds, stats.first_chunk_s, reply.chunk_size(),
                                   reply.sender(), reply.sender_complete()});
    if (absl::Status v = VerifyChecksum(ns, key, f.hold->meta, f.hold->offset, reply.sender()); !v.ok()) {
      // Corrupted on the way or at the sender: this copy is worthless. Drop it (receivers
      // pulling from it fail and re-plan), exclude the sender and fetch it whole again.
      spdlog::error("get {}: {}", PrintableName(ns, key), std::string(v.message()));
      store.AbortReceiving(ns, key, v);
      store.Unpin(*f.hold);
      f.hold.reset();
      f.last_failure = v;
      ++deps_.counters->retries;
      Report(f, reply.sender(), proto::ReportTransferRequest::SENDER_FAILED, std::string(v.message()), stats,
             f.incarnation);
      f.exclude.push_back(reply.sender());
      return false;
    }
    if (absl::Status fin = store.FinishReceiving(ns, key); !fin.ok()) return GiveUp(f, fin, reply.sender(), true);
    Report(f, reply.sender(), proto::ReportTransferRequest::COMPLETED, "", stats, f.incarnation);
    return true;
  }
  // Past the deadline, or the object was deleted (our copy here, or the complete copy at the
  // sender): no other sender will do better. A *partial* sender that says deleted may only have
  // dropped a copy of an earlier incarnation: the coordinator decides (AcquireSource with our
  // incarnation answers NOT_FOUND if it was deleted).
  const bool ours_deleted = IsObjectDeleted(s) && !store.Contains(ns, key);
  if (s.code() == absl::StatusCode::kDeadlineExceeded || ours_deleted ||
      (IsObjectDeleted(s) && reply.sender_complete())) {
    return GiveUp(f, s, reply.sender(), true);
  }
  ++deps_.counters->retries;
  f.last_failure = s;
  spdlog::warn("get {}: sender {} failed ({}); re-planning", PrintableName(ns, key), reply.sender(),
               std::string(s.message()));
  Report(f, reply.sender(), proto::ReportTransferRequest::SENDER_FAILED, std::string(s.message()), stats,
         f.incarnation);
  f.exclude.push_back(reply.sender());
  return false;
}

// Ends a failed FetchRemote: drops our partial copy, and reports ABORTED exactly once if the
// coordinator had attached us (`attached`, or we hold a partial copy). The error names the
// last sender failure too when it differs from `why`.
absl::Status ObjectFetcher::GiveUp(Fetch& f, absl::Status why, uint64_t sender, bool attached) {
  const bool had_copy = f.hold.has_value();
  if (had_copy) {
    deps_.store->AbortReceiving(f.ns, f.key, why);
    deps_.store->Unpin(*f.hold);
    f.hold.reset();
  }
  if (had_copy || attached) {
    // The incarnation of the copy given up (0 before the coordinator named one), so that a late
    // report about a deleted incarnation cannot touch the plan of a later one of the same key.
    Report(f, sender, proto::ReportTransferRequest::ABORTED, std::string(why.message()), {}, f.incarnation);
    *f.abort_reported = true;
  }
  if (!f.last_failure.ok() && why.code() != f.last_failure.code()) {
    return absl::Status(why.code(), absl::StrCat(why.message(), " (last sender failure: ", f.last_failure.message(), ")"));
  }
  return why;
}

// The key appeared on this node while we were attached as its receiver (a local Put): give
// the attachment back (ABORTED drops only a partial copy in the plan, never the complete one
// the Put publishes) and let Get read the local copy (ALREADY_EXISTS tells it to).
absl::Status ObjectFetcher::AlreadyHere(Fetch& f, absl::Status why) {
  Report(f, 0, proto::ReportTransferRequest::ABORTED, "the key was put on this node meanwhile", {}, f.incarnation);
  *f.abort_reported = true;
  return absl::AlreadyExistsError(why.message());
}

absl::Status ObjectFetcher::PullFromSender(const PullSpec& spec, PullStats* total) {
  // A sender attached a moment before it has created its receiving copy holds our requests
  // until it has (ChunkServer), so NOT_FOUND here means the object is not coming from it.
  PullStats stats;
  absl::Status s = puller_.Pull(spec, &stats);
  deps_.counters->bytes_received += stats.bytes;
  deps_.counters->chunks_received += stats.chunks;
  total->bytes += stats.bytes;
  total->chunks += stats.chunks;
  total->seconds += stats.seconds;
  if (total->first_chunk_s == 0) total->first_chunk_s = stats.first_chunk_s;
  return s;
}

void ObjectFetcher::Report(const Fetch& f, uint64_t sender, proto::ReportTransferRequest::Outcome outcome,
                           const std::string& detail, const PullStats& stats, uint64_t incarnation) {
  deps_.reports->Report(TransferReport{f.ns, f.key, sender, outcome, detail, stats.bytes, stats.seconds, incarnation,
                                       f.op_id});
}

}  // namespace ferry::dataplane
