#include "dataplane/sidecar/handlers/batch_pull_handler.h"

#include <algorithm>
#include <deque>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "dataplane/engine/chunk_request.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {
namespace {

// Progress reports leave at most this often (plus the final one), so that a batch of ten
// thousand small objects costs a handful of messages, not ten thousand.
constexpr absl::Duration kReportEvery = absl::Milliseconds(2);
constexpr size_t kReportMaxEntries = 4096;
constexpr uint32_t kMaxWindow = 16;

}  // namespace

// One instruction being carried out, on one executor thread.
class BatchPullHandler::Run {
 public:
  Run(const BatchPullDeps& deps, const std::atomic<bool>& stopping, const proto::BatchPullInstruction& ins)
      : deps_(deps), stopping_(stopping), ins_(ins), deadline_(absl::FromUnixMillis(ins.deadline_unix_ms())) {}

  void Go() {
    const absl::Time began = absl::Now();
    const size_t n = ins_.entries_size();
    absl::Status peer = deps_.fetcher->EnsurePeer(ins_.sender(), ins_.sender_address());
    if (!peer.ok()) {
      SenderFailed(absl::StrCat("cannot reach sender node ", ins_.sender(), ": ", peer.message()));
      return;
    }
    const uint64_t pack_limit =
        std::min<uint64_t>({std::max<uint32_t>(ins_.pack_bytes(), 1), deps_.packs->slot_bytes(), kMaxPackBytes});
    const uint32_t window = std::clamp<uint32_t>(ins_.window(), 1, kMaxWindow);
    size_t i = 0;
    while (i < n && !sender_failed_ && !Stopped()) {
      const proto::BatchEntry& e = ins_.entries(static_cast<int>(i));
      if (deps_.store->Contains(e.ref().ns(), e.ref().key()) || e.meta().size() > pack_limit) {
        Drain();   // what landed before it is stored first (downstream pulls in this order)
        StartLarge(e);
        ++i;
        continue;
      }
      // Consecutive small entries this node lacks, up to pack_limit bytes.
      std::vector<int> pack;
      uint64_t bytes = 0;
      while (i < n && pack.size() < kMaxPackEntries) {
        const proto::BatchEntry& next = ins_.entries(static_cast<int>(i));
        if (next.meta().size() > pack_limit || bytes + next.meta().size() > pack_limit ||
            deps_.store->Contains(next.ref().ns(), next.ref().key())) {
          break;
        }
        bytes += next.meta().size();
        pack.push_back(static_cast<int>(i));
        ++i;
      }
      while (InFlight() >= window && !sender_failed_) ProcessOne();
      if (!sender_failed_) IssuePack(std::move(pack), bytes);
      MaybeReport(false);
    }
    Drain();
    while (!large_.empty()) FinishOldestLarge();
    if (Stopped() && !sender_failed_) {
      for (const proto::BatchEntry& e : ins_.entries()) {
        if (!reported_.contains(e.index())) Fail(e, absl::CancelledError("ferryd is shutting down"));
      }
    }
    MaybeReport(true);
    spdlog::info("batch {}: {} entries from node {} in {:.1f} ms ({} packs, {} pulled alone){}", ins_.op_id(), n,
                 ins_.sender(), absl::ToDoubleMilliseconds(absl::Now() - began), packs_, alone_,
                 sender_failed_ ? "; the sender failed" : "");
  }

 private:
  struct PackFetch {
    std::vector<int> entries;   // positions in ins_.entries
    PackBuffers::Slot slot = 0;
    uint64_t bytes = 0;
    FetchId id = 0;
    std::optional<absl::Status> done;   // set by the transport's Done
  };

  bool Stopped() const { return stopping_.load() || absl::Now() >= deadline_; }

  size_t InFlight() {
    absl::MutexLock lock(&mu_);
    return fetches_.size();
  }

  void IssuePack(std::vector<int> entries, uint64_t bytes) {
    std::optional<PackBuffers::Slot> slot = deps_.packs->Acquire(deadline_);
    if (!slot) {
      for (int at : entries) Fail(ins_.entries(at), absl::DeadlineExceededError("no pack buffer became free in time"));
      return;
    }
    PackRequest req;
    req.ns = ins_.entries(entries.front()).ref().ns();
    for (int at : entries) req.entries.push_back(PackEntry{ins_.entries(at).ref().key(), ins_.entries(at).meta().size()});
    ++packs_;
    auto fetch = std::make_shared<PackFetch>();
    fetch->entries = std::move(entries);
    fetch->slot = *slot;
    fetch->bytes = bytes;
    {
      absl::MutexLock lock(&mu_);
      fetches_.push_back(fetch);
    }
    const FetchId id = deps_.transport->Fetch(ins_.sender(), EncodePackRequest(req), deps_.packs->slice(*slot, bytes),
                                              [this, fetch](absl::Status s) {
                                                absl::MutexLock lock(&mu_);
                                                fetch->done = std::move(s);
                                              });
    absl::MutexLock lock(&mu_);
    fetch->id = id;
  }

  // Waits for the oldest fetch in flight and handles its outcome (cancelling everything when
  // the batch is stopping or past its deadline; a fetch's buffer is released only after its
  // Done has run).
  void ProcessOne() {
    std::shared_ptr<PackFetch> fetch;
    {
      absl::MutexLock lock(&mu_);
      if (fetches_.empty()) return;
      fetch = fetches_.front();
    }
    bool cancelled = false;
    for (;;) {
      absl::MutexLock lock(&mu_);
      auto landed = [&fetch]() { return fetch->done.has_value(); };
      const absl::Time wake = cancelled ? absl::Now() + absl::Seconds(1) : std::min(deadline_, absl::Now() + absl::Milliseconds(100));
      if (mu_.AwaitWithDeadline(absl::Condition(&landed), wake)) break;
      if (Stopped() && !cancelled) {
        cancelled = true;
        for (const auto& f : fetches_) deps_.transport->CancelFetch(f->id);
      } else if (cancelled) {
        // A cancelled fetch that does not complete: close the connection (its operations then
        // complete, so no byte can land in the buffer afterwards).
        deps_.transport->ResetPeer(ins_.sender());
      }
    }
    absl::Status outcome;
    {
      absl::MutexLock lock(&mu_);
      fetches_.pop_front();
      outcome = *fetch->done;
    }
    if (outcome.ok()) {
      StorePack(*fetch);
    } else if (outcome.code() == absl::StatusCode::kUnavailable) {
      SenderFailed(std::string(outcome.message()));
    } else if (Stopped()) {
      for (int at : fetch->entries) Fail(ins_.entries(at), outcome);
    } else {
      // The pack as a whole failed (an entry deleted or missing there, a size mismatch): each
      // entry gets its own outcome from the ordinary path.
      spdlog::info("batch {}: a pack of {} objects from node {} failed ({}); pulling them one by one", ins_.op_id(),
                   fetch->entries.size(), ins_.sender(), std::string(outcome.message()));
      for (int at : fetch->entries) PullOne(ins_.entries(at));
    }
    deps_.packs->Release(fetch->slot);
  }

  void Drain() {
    while (InFlight() > 0) ProcessOne();
  }

  void StorePack(const PackFetch& fetch) {
    const uint8_t* at = deps_.packs->data(fetch.slot);
    for (int pos : fetch.entries) {
      const proto::BatchEntry& e = ins_.entries(pos);
      absl::string_view bytes(reinterpret_cast<const char*>(at), e.meta().size());
      at += e.meta().size();
      absl::Status s = deps_.fetcher->StoreInline(e.ref().ns(), e.ref().key(), e.meta(), bytes);
      if (s.ok() || s.code() == absl::StatusCode::kAlreadyExists) {
        Completed(e);
      } else {
        Fail(e, s);
      }
    }
  }

  // A large entry's pull through the Get path, on a thread of its own: up to kLargeInFlight run
  // at once, so the next one's first chunks are on their way while the one before it still
  // lands (one at a time, the link idled for a request and a chunk at every entry). Outcomes
  // are taken in order by FinishOldestLarge.
  void StartLarge(const proto::BatchEntry& e) {
    if (reported_.contains(e.index())) return;
    while (large_.size() >= kLargeInFlight) FinishOldestLarge();
    ++alone_;
    large_.push_back(LargePull{&e, std::async(std::launch::async, [this, &e] { return GetOne(e); })});
  }

  void FinishOldestLarge() {
    LargePull pull = std::move(large_.front());
    large_.pop_front();
    const absl::Status s = pull.done.get();
    if (s.ok()) {
      Completed(*pull.entry);
    } else {
      Fail(*pull.entry, s);
    }
  }

  // One entry through the Get path, here and now.
  void PullOne(const proto::BatchEntry& e) {
    if (reported_.contains(e.index())) return;
    ++alone_;
    if (absl::Status s = GetOne(e); s.ok()) {
      Completed(e);
    } else {
      Fail(e, s);
    }
  }

  // Gets one entry with this instruction's sender planned first. Thread-safe (reads only the
  // instruction and the deps).
  absl::Status GetOne(const proto::BatchEntry& e) {
    proto::AcquireSourceReply planned;
    *planned.mutable_meta() = e.meta();
    planned.set_sender(ins_.sender());
    planned.set_sender_address(ins_.sender_address());
    planned.set_chunk_size(std::max<uint32_t>(e.chunk_size(), kMinChunkSize));
    planned.set_window(std::clamp<uint32_t>(ins_.window(), 2, kMaxWindow));
    FetchOrigin origin{ins_.op_id(), &planned};
    bool abort_reported = false;
    absl::StatusOr<GetResult> r =
        deps_.fetcher->Get(e.ref().ns(), e.ref().key(), kInternalSession, deadline_, origin, &abort_reported);
    if (!r.ok()) return r.status();
    deps_.store->Unpin(r->pin);
    return absl::OkStatus();
  }

  void Completed(const proto::BatchEntry& e) {
    if (!reported_.insert(e.index()).second) return;
    report_.add_completed(e.index());
    MaybeReport(false);
  }

  void Fail(const proto::BatchEntry& e, const absl::Status& why) {
    if (!reported_.insert(e.index()).second) return;
    proto::BatchEntryError* err = report_.add_failed();
    err->set_index(e.index());
    err->set_code(static_cast<int32_t>(why.code()));
    err->set_error(std::string(why.message()));
    MaybeReport(false);
  }

  void SenderFailed(std::string why) {
    if (sender_failed_) return;
    sender_failed_ = true;
    spdlog::warn("batch {}: sender node {} failed: {}", ins_.op_id(), ins_.sender(), why);
    report_.set_sender_failed(true);
    report_.set_detail(std::move(why));
  }

  void MaybeReport(bool final) {
    const size_t pending = report_.completed_size() + report_.failed_size();
    const absl::Time now = absl::Now();
    if (!final && (pending == 0 || (now - last_report_ < kReportEvery && pending < kReportMaxEntries))) return;
    report_.set_op_id(ins_.op_id());
    report_.set_sender(ins_.sender());
    report_.set_final(final);
    proto::NodeMessage msg;
    *msg.mutable_batch_report() = std::move(report_);
    if (!deps_.send(msg)) spdlog::warn("batch {}: no coordinator session: a progress report was lost", ins_.op_id());
    report_.Clear();
    if (sender_failed_) report_.set_sender_failed(true);   // every later report says so too
    last_report_ = now;
  }

  const BatchPullDeps& deps_;
  const std::atomic<bool>& stopping_;
  const proto::BatchPullInstruction& ins_;
  const absl::Time deadline_;
  bool sender_failed_ = false;
  size_t packs_ = 0, alone_ = 0;   // for the log line
  struct LargePull {
    const proto::BatchEntry* entry;
    std::future<absl::Status> done;
  };
  static constexpr size_t kLargeInFlight = 2;
  std::deque<LargePull> large_;     // StartLarge's pulls, oldest first
  absl::flat_hash_set<uint32_t> reported_;   // entry indices completed or failed
  proto::BatchReport report_;                // what the next report carries
  absl::Time last_report_ = absl::InfinitePast();
  absl::Mutex mu_;
  std::deque<std::shared_ptr<PackFetch>> fetches_ ABSL_GUARDED_BY(mu_);   // in flight, oldest first
};

BatchPullHandler::BatchPullHandler(BatchPullDeps deps, size_t max_batches)
    : deps_(std::move(deps)), batches_("batch pulls", max_batches) {}

BatchPullHandler::~BatchPullHandler() { Shutdown(); }

void BatchPullHandler::Shutdown() {
  stopping_ = true;
  batches_.Shutdown();
}

void BatchPullHandler::Handle(const proto::BatchPullInstruction& batch) {
  {
    absl::MutexLock lock(&mu_);
    auto [it, fresh] = queued_.try_emplace(batch.op_id());
    it->second.push_back(batch);
    if (!fresh) return;   // its operation's task runs it after the ones before it
  }
  absl::Status submitted = batches_.Submit([this, op = batch.op_id()] { RunOperation(op); });
  if (submitted.ok()) return;
  std::deque<proto::BatchPullInstruction> refused;
  {
    absl::MutexLock lock(&mu_);
    refused.swap(queued_[batch.op_id()]);
    queued_.erase(batch.op_id());
  }
  for (const proto::BatchPullInstruction& b : refused) Refuse(b, submitted);
}

void BatchPullHandler::RunOperation(uint64_t op_id) {
  for (;;) {
    proto::BatchPullInstruction next;
    {
      absl::MutexLock lock(&mu_);
      auto it = queued_.find(op_id);
      if (it == queued_.end() || it->second.empty()) {
        if (it != queued_.end()) queued_.erase(it);
        return;
      }
      next = std::move(it->second.front());
      it->second.pop_front();
    }
    Run(deps_, stopping_, next).Go();
  }
}

void BatchPullHandler::Refuse(const proto::BatchPullInstruction& batch, const absl::Status& why) {
  spdlog::warn("refusing batch pull {} of {} objects: {}", batch.op_id(), batch.entries_size(),
               std::string(why.message()));
  // Every entry fails here, so the batch does not wait for this node until its deadline.
  proto::NodeMessage msg;
  proto::BatchReport* report = msg.mutable_batch_report();
  report->set_op_id(batch.op_id());
  report->set_sender(batch.sender());
  report->set_final(true);
  for (const proto::BatchEntry& e : batch.entries()) {
    proto::BatchEntryError* err = report->add_failed();
    err->set_index(e.index());
    err->set_code(static_cast<int32_t>(why.code()));
    err->set_error(absl::StrCat("this node refused the batch pull: ", why.message()));
  }
  (void)deps_.send(msg);
}

}  // namespace ferry::dataplane
