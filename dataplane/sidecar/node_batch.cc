// Node's batch operations (CreateBatch, SealBatch, GetBatch, DeleteBatch): what the single
// calls in node.cc do for each entry, with one coordinator call per group of entries instead
// of one per entry. Groups are bounded (entries and bytes) so that every request stays well
// under the coordinator's 16 MiB message limit.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "core/names.h"
#include "dataplane/sidecar/node.h"
#include "dataplane/sidecar/node_proto.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {
namespace {

// Most entries, and most inline bytes, in one coordinator request of a batch.
constexpr size_t kGroupEntries = 8192;
constexpr size_t kGroupInlineBytes = 4 << 20;
// Entries of a GetBatch fetched at once the single Get's way (those the batch pull did not bring).
constexpr size_t kGetBatchThreads = 16;
// Batch pulls a GetBatch makes at most (each after waiting for an object not created yet).
constexpr int kGetBatchRounds = 8;

uint32_t MillisUntil(absl::Time deadline) {
  return static_cast<uint32_t>(std::clamp<int64_t>(absl::ToInt64Milliseconds(deadline - absl::Now()), 1, UINT32_MAX));
}

// Calls `f(begin, end)` for consecutive groups of at most kGroupEntries of `n` entries.
template <typename F>
absl::Status ForGroups(size_t n, F f) {
  for (size_t begin = 0; begin < n; begin += kGroupEntries) {
    FERRY_RETURN_IF_ERROR(f(begin, std::min(n, begin + kGroupEntries)));
  }
  return absl::OkStatus();
}

absl::Status EntryError(const proto::BatchEntryError& e) {
  return absl::Status(static_cast<absl::StatusCode>(e.code()), e.error());
}

}  // namespace

absl::StatusOr<std::vector<absl::StatusOr<uint64_t>>> Node::CreateBatch(const std::string& ns,
                                                                         const std::vector<CreateEntry>& entries,
                                                                         SessionId session) {
  std::vector<absl::StatusOr<uint64_t>> out(entries.size(), absl::UnknownError("not created"));
  const uint64_t capacity = store_.Stats().capacity;
  uint64_t total = 0;   // saturating: no wrap-around, however large the sizes
  for (const CreateEntry& e : entries) total = e.meta.size > UINT64_MAX - total ? UINT64_MAX : total + e.meta.size;
  if (total > capacity) {
    return absl::ResourceExhaustedError(absl::StrCat("the batch holds ", total, " bytes in ", entries.size(),
                                                     " objects, more than this node's arena of ", capacity, " bytes"));
  }
  // Keys are cluster-wide: one check with the coordinator for every name not held here.
  std::vector<size_t> unchecked;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (store_.Contains(ns, entries[i].key)) {
      out[i] = absl::AlreadyExistsError(
          absl::StrCat("object ", PrintableName(ns, entries[i].key), " already exists on this node"));
    } else {
      unchecked.push_back(i);
    }
  }
  // Every name is checked before anything is allocated: a failed check refuses the batch whole.
  std::vector<bool> taken(unchecked.size(), false);
  reports_.Flush();
  FERRY_RETURN_IF_ERROR(ForGroups(unchecked.size(), [&](size_t begin, size_t end) -> absl::Status {
    proto::ExistsRequest req;
    for (size_t j = begin; j < end; ++j) *req.add_refs() = Ref(ns, entries[unchecked[j]].key);
    proto::ExistsReply reply;
    if (absl::Status s = coordinator_->Exists(req, &reply); !s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("cannot check the batch's names with the coordinator: ", s.message()));
    }
    if (reply.exists_size() != req.refs_size()) {
      return absl::InternalError(absl::StrCat("the coordinator answered ", reply.exists_size(),
                                              " name checks for ", req.refs_size(), " names"));
    }
    for (size_t j = begin; j < end; ++j) taken[j] = reply.exists(static_cast<int>(j - begin));
    return absl::OkStatus();
  }));
  for (size_t j = 0; j < unchecked.size(); ++j) {
    const size_t i = unchecked[j];
    if (taken[j]) {
      out[i] = absl::AlreadyExistsError(
          absl::StrCat("object ", PrintableName(ns, entries[i].key), " already exists in the cluster"));
      continue;
    }
    StoredMeta fresh = entries[i].meta;
    fresh.incarnation = NewNodeId();
    fresh.checksummed = fresh.checksummed || options_.checksum_all;
    fresh.checksum = 0;
    out[i] = store_.Create(ns, entries[i].key, fresh, session);
  }
  return out;
}

absl::StatusOr<std::vector<absl::Status>> Node::SealBatch(const std::string& ns, const std::vector<std::string>& keys,
                                                          SessionId session) {
  std::vector<absl::Status> out(keys.size());
  // Sealed here, to publish: (entry index, request), in groups bounded by entries and bytes.
  std::vector<std::pair<size_t, proto::PublishRequest>> sealed;
  sealed.reserve(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    absl::StatusOr<proto::PublishRequest> req = SealLocally(ns, keys[i], session);
    if (req.ok()) {
      sealed.emplace_back(i, *std::move(req));
    } else {
      out[i] = req.status();
    }
  }
  reports_.Flush();
  std::vector<std::pair<absl::Status, bool>> published = PublishGroups(sealed);
  for (size_t j = 0; j < sealed.size(); ++j) {
    const size_t i = sealed[j].first;
    const auto& [status, refused] = published[j];
    if (!refused) {
      out[i] = PublishOutcome(ns, keys[i], status);   // the call's outcome
    } else {
      store_.Delete(ns, keys[i]).IgnoreError();
      out[i] = Annotate(status, absl::StrCat("publishing ", PrintableName(ns, keys[i])));
    }
  }
  return out;
}

std::vector<std::pair<absl::Status, bool>> Node::PublishGroups(
    std::vector<std::pair<size_t, proto::PublishRequest>>& requests) {
  std::vector<std::pair<absl::Status, bool>> out(requests.size());
  size_t begin = 0;
  while (begin < requests.size()) {
    proto::PublishBatchRequest req;
    req.set_node_id(options_.node_id);
    size_t end = begin;
    size_t inline_bytes = 0;
    // One namespace per call (the batch rule), bounded by entries and inline bytes.
    while (end < requests.size() && end - begin < kGroupEntries &&
           (end == begin || (inline_bytes + requests[end].second.inline_data().size() <= kGroupInlineBytes &&
                             requests[end].second.ref().ns() == requests[begin].second.ref().ns()))) {
      inline_bytes += requests[end].second.inline_data().size();
      *req.add_entries() = std::move(requests[end].second);
      ++end;
    }
    proto::PublishBatchReply reply;
    const absl::Status s = coordinator_->PublishBatch(req, &reply);
    for (size_t j = begin; j < end; ++j) out[j] = {s, false};
    if (s.ok()) {
      for (const proto::BatchEntryError& e : reply.errors()) {
        if (e.index() < end - begin) out[begin + e.index()] = {EntryError(e), true};
      }
    }
    begin = end;
  }
  return out;
}

void Node::RepublishDeferred() {
  std::vector<std::pair<std::string, std::string>> deferred;
  {
    absl::MutexLock lock(&deferred_mu_);
    deferred.swap(deferred_);
  }
  std::vector<std::pair<size_t, proto::PublishRequest>> requests;
  for (size_t i = 0; i < deferred.size(); ++i) {
    absl::StatusOr<proto::PublishRequest> req = PublishRequestFor(deferred[i].first, deferred[i].second);
    if (req.ok()) requests.emplace_back(i, *std::move(req));
  }
  std::sort(requests.begin(), requests.end(), [](const auto& a, const auto& b) {
    return a.second.ref().ns() < b.second.ref().ns();
  });
  std::vector<std::pair<absl::Status, bool>> published = PublishGroups(requests);
  size_t refused = 0;
  for (size_t j = 0; j < requests.size(); ++j) {
    const auto& [ns, key] = deferred[requests[j].first];
    const auto& [status, entry_refused] = published[j];
    if (status.ok()) continue;
    ++refused;
    // A copy of a deleted incarnation must not come back (as for the Hello's holdings).
    if (entry_refused && status.code() == absl::StatusCode::kNotFound) store_.Delete(ns, key).IgnoreError();
  }
  spdlog::info("re-reported {} small object(s) with their bytes after registering ({} not taken)", requests.size(),
               refused);
}

absl::StatusOr<std::vector<absl::StatusOr<GetResult>>> Node::GetBatch(const std::string& ns,
                                                                      const std::vector<std::string>& keys,
                                                                      SessionId session, absl::Time deadline,
                                                                      uint64_t* pulled_bytes) {
  std::vector<absl::StatusOr<GetResult>> out;
  out.reserve(keys.size());
  std::vector<bool> missing(keys.size(), false);
  for (size_t i = 0; i < keys.size(); ++i) missing[i] = !store_.Contains(ns, keys[i]);
  uint64_t moved = 0;
  // Batch pulls of what is not here: packed small objects, large ones pipelined. Objects not
  // created yet fail such a pull; then the call waits (Locate) for the first of them to
  // appear and pulls again, a few rounds at most; what is still missing after that goes the
  // single Get's way below.
  for (int round = 0; round < kGetBatchRounds && absl::Now() < deadline; ++round) {
    proto::BroadcastBatchRequest req;
    for (size_t i = 0; i < keys.size(); ++i) {
      if (!store_.Contains(ns, keys[i])) *req.add_refs() = Ref(ns, keys[i]);
    }
    if (req.refs_size() == 0) break;
    req.add_node_ids(options_.node_id);
    req.set_wait(true);
    req.set_timeout_ms(MillisUntil(deadline));
    proto::BroadcastBatchReply reply;
    reports_.Flush();
    absl::Status s = coordinator_->BroadcastBatch(req, &reply);
    if (!s.ok()) {
      // Not fatal: every entry still goes the single Get's way below.
      spdlog::info("batch get of {} object(s) in {}: the batch pull failed ({}); getting them one by one",
                   req.refs_size(), ns, std::string(s.message()));
      break;
    }
    moved += reply.bytes();
    bool unknown = false;   // an entry that does not exist (yet)
    for (const proto::BatchEntryError& e : reply.errors()) {
      if (e.code() == static_cast<int32_t>(absl::StatusCode::kNotFound) && e.index() < static_cast<uint32_t>(req.refs_size())) {
        unknown = true;
        proto::LocateRequest locate;
        *locate.mutable_ref() = req.refs(static_cast<int>(e.index()));
        // (Within the coordinator client's 10 s RPC deadline; a longer wait goes the single path.)
        locate.set_timeout_ms(std::min<uint32_t>(MillisUntil(deadline), 5000));
        proto::LocateReply where;
        if (!coordinator_->Locate(locate, &where).ok()) round = kGetBatchRounds;   // not before the deadline
        break;
      }
    }
    if (!unknown) break;   // failures other than "not there yet": the single path retries them
  }
  // Each entry: pinned at once if held here now (already, or brought by the batch); the others
  // go the single Get's way (waiting for objects not created yet, retrying failed senders)
  // until the deadline, several at once so that one that never appears does not hold up the
  // rest.
  std::vector<absl::StatusOr<GetResult>> got(keys.size(), absl::UnknownError("not fetched"));
  std::vector<size_t> waiting;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (store_.Contains(ns, keys[i])) {
      got[i] = fetcher_.Get(ns, keys[i], session, deadline);
    } else {
      waiting.push_back(i);
    }
  }
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t j = next++; j < waiting.size(); j = next++) {
      absl::StatusOr<GetResult> r = fetcher_.Get(ns, keys[waiting[j]], session, deadline);
      if (r.status().code() == absl::StatusCode::kNotFound && absl::Now() >= deadline) {
        // As a single Get that waited: the object did not appear in time.
        r = absl::DeadlineExceededError(absl::StrCat(r.status().message(), " (not created before the GetBatch's deadline)"));
      }
      got[waiting[j]] = std::move(r);
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < std::min(waiting.size(), kGetBatchThreads); ++t) pool.emplace_back(worker);
  if (!waiting.empty()) worker();
  for (std::thread& t : pool) t.join();
  for (size_t i = 0; i < keys.size(); ++i) {
    if (got[i].ok() && missing[i]) got[i]->pulled = true;
    out.push_back(std::move(got[i]));
  }
  if (pulled_bytes != nullptr) *pulled_bytes = moved;
  return out;
}

absl::StatusOr<std::vector<absl::Status>> Node::DeleteBatch(const std::string& ns,
                                                            const std::vector<std::string>& keys) {
  std::vector<absl::Status> out(keys.size());
  reports_.Flush();
  FERRY_RETURN_IF_ERROR(ForGroups(keys.size(), [&](size_t begin, size_t end) -> absl::Status {
    proto::DeleteBatchRequest req;
    for (size_t i = begin; i < end; ++i) *req.add_refs() = Ref(ns, keys[i]);
    proto::DeleteBatchReply reply;
    const absl::Status s = coordinator_->DeleteBatch(req, &reply);
    if (!s.ok() && begin == 0) return s;   // nothing deleted yet: the batch fails as a whole
    std::vector<absl::Status> remote(end - begin, s);
    for (const proto::BatchEntryError& e : reply.errors()) {
      if (e.index() < remote.size()) remote[e.index()] = EntryError(e);
    }
    for (size_t i = begin; i < end; ++i) {
      // As Delete: a name only this node held (never published) is deleted too.
      const absl::Status local = store_.Delete(ns, keys[i]);
      out[i] = DeleteOutcome(remote[i - begin], local);
    }
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace ferry::dataplane
