#include "dataplane/sidecar/node.h"

#include <random>

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "common/grpc_options.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "control/membership_delta.h"
#include "proto/status_bridge.h"
#include "spdlog/spdlog.h"
#include "xxhash.h"

namespace ferry::dataplane {
namespace {

constexpr absl::Duration kRpcTimeout = absl::Seconds(10);

proto::ObjectRef Ref(const std::string& ns, const std::string& key) {
  proto::ObjectRef ref;
  ref.set_ns(ns);
  ref.set_key(key);
  return ref;
}

void SetMeta(const StoredMeta& m, proto::ObjectMeta* out) {
  out->set_size(m.size);
  out->set_dtype(static_cast<proto::DType>(m.dtype));
  out->set_count(m.count);
  out->set_incarnation(m.incarnation);
  out->set_checksummed(m.checksummed);
  out->set_checksum(m.checksum);
}

StoredMeta FromProto(const proto::ObjectMeta& m) {
  return StoredMeta{m.size(), static_cast<uint32_t>(m.dtype()), m.count(), m.incarnation(), m.checksummed(),
                    m.checksum()};
}

uint64_t Hash(const uint8_t* data, uint64_t size) { return XXH3_64bits(data, size); }

std::string RandomSecret() {
  std::random_device rd;
  std::string out(16, '\0');
  for (char& c : out) c = static_cast<char>(rd());
  return out;
}

// Codes with which a coordinator refuses a registration for good (not "try again").
bool IsRefusal(grpc::StatusCode code) {
  return code == grpc::StatusCode::ALREADY_EXISTS || code == grpc::StatusCode::UNAUTHENTICATED ||
         code == grpc::StatusCode::INVALID_ARGUMENT || code == grpc::StatusCode::PERMISSION_DENIED;
}

}  // namespace

uint64_t Node::NewNodeId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  uint64_t id = 0;
  while (id == 0) id = gen() >> 1;
  return id;
}

absl::StatusOr<std::unique_ptr<Node>> Node::Create(NodeOptions options, std::unique_ptr<Arena> arena,
                                                   std::unique_ptr<Transport> transport) {
  if (options.name.empty()) return absl::InvalidArgumentError("node name is empty");
  if (options.coordinator.empty()) return absl::InvalidArgumentError("coordinator address is empty");
  if (options.node_id == 0) options.node_id = NewNodeId();
  return std::unique_ptr<Node>(new Node(std::move(options), std::move(arena), std::move(transport)));
}

Node::Node(NodeOptions options, std::unique_ptr<Arena> arena, std::unique_ptr<Transport> transport)
    : options_(std::move(options)),
      arena_(std::move(arena)),
      transport_(std::move(transport)),
      store_(arena_->size()),
      server_(&store_, options_.arena_region),
      puller_(transport_.get(), &store_),
      session_secret_(RandomSecret()),
      broadcast_pulls_("broadcast pulls", options_.max_broadcast_pulls) {
  server_.Attach(transport_.get());
  transport_->SetPeerFailureHandler([](NodeId peer, const absl::Status& why) {
    spdlog::warn("data-plane peer {} failed: {}", peer, std::string(why.message()));
  });
  store_.SetEvictionListener([this](const std::string& ns, const std::string& key) { OnEvicted(ns, key); });
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  ApplyClientKeepalive(kKeepalive, args);  // the policy ferry-coord's server permits
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  channel_ = grpc::CreateCustomChannel(options_.coordinator, grpc::InsecureChannelCredentials(), args);
  stub_ = proto::Coordinator::NewStub(channel_);
  reports_ = std::make_unique<ReportQueue>([this](const proto::ReportTransferRequest& r) { SendReport(r); });
}

Node::~Node() { Shutdown(); }

void Node::Start() {
  session_thread_ = std::thread([this] { SessionLoop(); });
}

absl::Status Node::WaitRegistered(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const bool decided = cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                                    [this] { return connected_.load() || !refusal_.ok() || stopping_.load(); });
  if (!refusal_.ok()) return refusal_;
  if (!decided) {
    return absl::DeadlineExceededError(absl::StrCat("no answer from coordinator ", options_.coordinator, " within ",
                                                    absl::FormatDuration(timeout), " (still trying)"));
  }
  return absl::OkStatus();
}

void Node::Shutdown() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (session_ctx_ != nullptr) session_ctx_->TryCancel();
    for (grpc::ClientContext* call : waiting_calls_) call->TryCancel();
  }
  cv_.notify_all();
  if (session_thread_.joinable()) session_thread_.join();
  // Every pull sees stopping_ (PullSpec::stop) and its coordinator calls are cancelled, so
  // the broadcast pulls end; they are joined before anything they use goes away.
  broadcast_pulls_.Shutdown();
  reports_->Stop();
  transport_->Shutdown();
}

std::unique_ptr<grpc::ClientContext> Node::Context(absl::Duration timeout) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return ctx;
}

absl::StatusOr<uint64_t> Node::CreateObject(const std::string& ns, const std::string& key, const StoredMeta& meta,
                                            SessionId session) {
  if (absl::Status s = ValidateObjectName(ns, key); !s.ok()) return s;
  if (store_.Contains(ns, key)) {
    return absl::AlreadyExistsError(absl::StrCat("object ", PrintableName(ns, key), " already exists on this node"));
  }
  // Keys are cluster-wide: refuse one that another node already published.
  proto::LocateRequest req;
  *req.mutable_ref() = Ref(ns, key);
  proto::LocateReply reply;
  FlushReports();
  auto ctx = Context(kRpcTimeout);
  grpc::Status s = stub_->Locate(ctx.get(), req, &reply);
  if (s.ok()) {
    return absl::AlreadyExistsError(absl::StrCat("object ", PrintableName(ns, key), " already exists in the cluster"));
  }
  if (s.error_code() != grpc::StatusCode::NOT_FOUND && s.error_code() != grpc::StatusCode::DATA_LOSS) {
    return absl::UnavailableError(absl::StrCat("cannot check ", PrintableName(ns, key),
                                               " with the coordinator: ", s.error_message()));
  }
  StoredMeta fresh = meta;
  fresh.incarnation = NewNodeId();   // this creation of the key
  fresh.checksummed = meta.checksummed || options_.checksum_all;
  fresh.checksum = 0;
  return store_.Create(ns, key, fresh, session);
}

absl::Status Node::Seal(const std::string& ns, const std::string& key, SessionId session) {
  uint64_t checksum = 0;
  if (absl::StatusOr<PinnedObject> writing = store_.PinInternal(ns, key); writing.ok()) {
    // Hash while pinned (the client asked to seal: it writes no more), before sealing.
    if (writing->meta.checksummed) checksum = Hash(arena_->base() + writing->offset, writing->meta.size);
    store_.Unpin(*writing);
  }
  if (absl::Status s = store_.Seal(ns, key, session, checksum); !s.ok()) return s;
  absl::StatusOr<PinnedObject> pin = store_.PinInternal(ns, key);
  if (!pin.ok()) return pin.status();
  proto::PublishRequest req;
  req.set_node_id(options_.node_id);
  *req.mutable_ref() = Ref(ns, key);
  SetMeta(pin->meta, req.mutable_meta());
  if (pin->meta.size <= inline_max_.load()) {
    req.set_inline_data(reinterpret_cast<const char*>(arena_->base() + pin->offset), pin->meta.size);
  }
  store_.Unpin(*pin);
  proto::PublishReply reply;
  FlushReports();
  auto ctx = Context(kRpcTimeout);
  grpc::Status s = stub_->Publish(ctx.get(), req, &reply);
  if (s.ok()) return absl::OkStatus();
  absl::Status refused;
  {
    std::lock_guard<std::mutex> lock(mu_);
    refused = refusal_;
  }
  if (!refused.ok()) {
    // Not a passing outage: the coordinator will not take this node, so nothing it holds is
    // visible to the cluster. Say so instead of pretending the object was published.
    store_.Delete(ns, key).IgnoreError();
    return absl::FailedPreconditionError(absl::StrCat("publishing ", PrintableName(ns, key),
                                                      ": this node is not registered with the coordinator (",
                                                      refused.message(), ")"));
  }
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      s.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    // Sealed here; it is re-reported when the coordinator session is (re-)established.
    spdlog::warn("publishing {}: {} (kept locally, will re-report)", PrintableName(ns, key), s.error_message());
    return absl::OkStatus();
  }
  store_.Delete(ns, key).IgnoreError();
  return Annotate(FromGrpc(s), absl::StrCat("publishing ", PrintableName(ns, key)));
}

absl::StatusOr<GetResult> Node::Get(const std::string& ns, const std::string& key, SessionId session,
                                    absl::Time deadline) {
  bool abort_reported = false;
  return GetReporting(ns, key, session, deadline, nullptr, &abort_reported);
}

absl::StatusOr<GetResult> Node::GetReporting(const std::string& ns, const std::string& key, SessionId session,
                                             absl::Time deadline, const proto::AcquireSourceReply* planned,
                                             bool* abort_reported) {
  if (absl::Status s = ValidateObjectName(ns, key); !s.ok()) return s;
  while (true) {
    absl::StatusOr<PinnedObject> local = store_.PinSealed(ns, key, session);
    if (local.ok()) return GetResult{*local};
    if (local.status().code() == absl::StatusCode::kFailedPrecondition) {
      // Being written by a client or received by another Get: wait for the seal.
      absl::StatusOr<PinnedObject> sealed = store_.WaitSealed(ns, key, session, deadline);
      if (sealed.ok()) return GetResult{*sealed};
      if (sealed.status().code() != absl::StatusCode::kNotFound) return sealed.status();
      continue;   // it was dropped (failed pull): try again
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto k = std::make_pair(ns, key);
      if (pulling_.contains(k)) {
        if (!cv_.wait_until(lock, absl::ToChronoTime(deadline),
                            [&] { return !pulling_.contains(k) || stopping_.load(); })) {
          return absl::DeadlineExceededError(
              absl::StrCat("object ", PrintableName(ns, key), " is still being pulled at the deadline"));
        }
        if (stopping_.load()) return absl::CancelledError("ferryd is shutting down");
        continue;
      }
      pulling_.insert(k);
    }
    absl::StatusOr<GetResult> r = FetchRemote(ns, key, session, deadline, planned, abort_reported);
    {
      std::lock_guard<std::mutex> lock(mu_);
      pulling_.erase(std::make_pair(ns, key));
    }
    cv_.notify_all();
    // The key was put on this node while we waited for a sender: read the local copy.
    if (r.status().code() == absl::StatusCode::kAlreadyExists) {
      planned = nullptr;
      continue;
    }
    if (!r.ok()) ++counters_.failures;
    return r;
  }
}

absl::Status Node::EnsurePeer(uint64_t peer, const std::string& address) {
  if (transport_->HasPeer(peer)) return absl::OkStatus();
  return transport_->AddPeer(peer, address);
}

absl::Status Node::StoreInline(const std::string& ns, const std::string& key, const proto::ObjectMeta& m,
                               const std::string& data) {
  StoredMeta meta = FromProto(m);
  if (data.size() != meta.size) {
    return absl::InternalError(absl::StrCat("inline copy of ", PrintableName(ns, key), " has ", data.size(),
                                            " bytes, expected ", meta.size));
  }
  // One chunk spanning the whole object (inline objects are at most a few MiB).
  const uint32_t chunk = static_cast<uint32_t>(std::max<uint64_t>(meta.size, 1));
  absl::StatusOr<uint64_t> offset = store_.CreateReceiving(ns, key, meta, chunk);
  if (!offset.ok()) return offset.status();
  if (meta.size > 0) std::memcpy(arena_->base() + *offset, data.data(), meta.size);
  if (absl::Status v = VerifyChecksum(ns, key, meta, *offset, 0); !v.ok()) {
    store_.AbortReceiving(ns, key, v);
    return v;
  }
  store_.MarkChunk(ns, key, 0);
  return store_.FinishReceiving(ns, key);
}

absl::Status Node::VerifyChecksum(const std::string& ns, const std::string& key, const StoredMeta& meta,
                                  uint64_t offset, uint64_t from) {
  if (!meta.checksummed) return absl::OkStatus();
  const uint64_t got = Hash(arena_->base() + offset, meta.size);
  if (got == meta.checksum) return absl::OkStatus();
  ++counters_.checksum_mismatches;
  return absl::DataLossError(absl::StrCat("checksum mismatch in the copy of ", PrintableName(ns, key),
                                          from != 0 ? absl::StrCat(" pulled from node ", from) : std::string(" received inline"),
                                          ": bytes hash to ", absl::Hex(got), ", the creator sealed ",
                                          absl::Hex(meta.checksum)));
}

absl::Status Node::AcquireSource(const proto::ObjectRef& ref, const std::vector<uint64_t>& exclude,
                                 absl::Duration remaining, proto::AcquireSourceReply* reply) {
  proto::AcquireSourceRequest req;
  req.set_node_id(options_.node_id);
  *req.mutable_ref() = ref;
  req.set_timeout_ms(static_cast<uint32_t>(std::min<int64_t>(absl::ToInt64Milliseconds(remaining), 3600000)));
  for (uint64_t id : exclude) req.add_exclude(id);
  FlushReports();
  auto ctx = Context(remaining + absl::Seconds(5));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_.load()) return absl::CancelledError("ferryd is shutting down");
    waiting_calls_.insert(ctx.get());
  }
  grpc::Status gs = stub_->AcquireSource(ctx.get(), req, reply);
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiting_calls_.erase(ctx.get());
  }
  return gs.ok() ? absl::OkStatus() : FromGrpc(gs);
}

absl::StatusOr<PinnedObject> Node::StartReceiving(const std::string& ns, const std::string& key,
                                                  const proto::AcquireSourceReply& reply) {
  absl::StatusOr<uint64_t> offset = store_.CreateReceiving(ns, key, FromProto(reply.meta()), reply.chunk_size());
  if (!offset.ok()) return offset.status();
  return store_.PinInternal(ns, key);
}

// One FetchRemote across its attempts (one per sender). Lives on FetchRemote's stack.
struct Node::Fetch {
  const std::string& ns;
  const std::string& key;
  absl::Time start, deadline;
  std::vector<uint64_t> exclude;      // senders that failed us
  std::optional<PinnedObject> hold;   // our partial copy, pinned while we pull into it
  absl::Status last_failure;
  bool* abort_reported;
  uint64_t incarnation = 0;           // of the copy we are receiving
};

absl::StatusOr<GetResult> Node::FetchRemote(const std::string& ns, const std::string& key, SessionId session,
                                            absl::Time deadline, const proto::AcquireSourceReply* planned,
                                            bool* abort_reported) {
  Fetch f{ns, key, absl::Now(), deadline, {}, std::nullopt, absl::OkStatus(), abort_reported};
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
    if (attempt == 0 && planned != nullptr) {
      reply = *planned;   // attached by the coordinator with the instruction
    } else if (absl::Status s = AcquireSource(Ref(ns, key), f.exclude, remaining, &reply); !s.ok()) {
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
      Report(ns, key, 0, proto::ReportTransferRequest::COMPLETED, "", {}, f.incarnation);
      break;
    }
    result.source_node = reply.sender();
    absl::StatusOr<bool> done = PullAttempt(f, reply, asked);
    if (!done.ok()) return done.status();
    if (*done) break;
  }
  if (f.hold) store_.Unpin(*f.hold);
  absl::StatusOr<PinnedObject> pin = store_.PinSealed(ns, key, session);
  if (!pin.ok()) return pin.status();
  result.pin = *pin;
  result.seconds = absl::ToDoubleSeconds(absl::Now() - f.start);
  return result;
}

// Pulls from the sender in `reply` into our receiving copy. true: the copy is complete;
// false: the sender failed and was reported (try another); an error: the Get has failed
// (already given up on).
absl::StatusOr<bool> Node::PullAttempt(Fetch& f, const proto::AcquireSourceReply& reply, absl::Time asked) {
  const std::string& ns = f.ns;
  const std::string& key = f.key;
  if (!f.hold) {
    absl::StatusOr<PinnedObject> pin = StartReceiving(ns, key, reply);
    if (!pin.ok() && pin.status().code() == absl::StatusCode::kAlreadyExists) return AlreadyHere(f, pin.status());
    if (!pin.ok()) return GiveUp(f, pin.status(), reply.sender(), true);
    f.hold = *pin;
  }
  absl::Status s = EnsurePeer(reply.sender(), reply.sender_address());
  // An invalid sender address (INVALID_ARGUMENT) is that sender's failure: try another.
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) return GiveUp(f, s, reply.sender(), true);
  PullSpec spec{reply.sender(), ns, key, reply.meta().size(), reply.chunk_size(),
                options_.window_override > 0 ? options_.window_override : std::max<uint32_t>(reply.window(), 2),
                LocalSlice{options_.arena_region, f.hold->offset, reply.meta().size()}, f.deadline, options_.max_pull_rate_Bps, &stopping_};
  PullStats stats;
  ++counters_.pulls;
  const absl::Time pull_start = absl::Now();
  if (s.ok()) s = PullFromSender(spec, &stats);
  if (s.ok()) {
    spdlog::debug("get {}: {} B from node {} in {:.3f} ms (before the pull {:.3f} ms, first chunk {:.3f} ms, "
                  "pull {:.3f} ms, chunk {} B, window {})", PrintableName(ns, key), stats.bytes, reply.sender(),
                  absl::ToDoubleMilliseconds(absl::Now() - f.start), absl::ToDoubleMilliseconds(pull_start - asked),
                  stats.first_chunk_s * 1e3, stats.seconds * 1e3, reply.chunk_size(), spec.window);
    RecordMeasurement(stats, reply.chunk_size(), reply.sender(), reply.sender_complete());
    if (absl::Status v = VerifyChecksum(ns, key, f.hold->meta, f.hold->offset, reply.sender()); !v.ok()) {
      // Corrupted on the way or at the sender: this copy is worthless. Drop it (receivers
      // pulling from it fail and re-plan), exclude the sender and fetch it whole again.
      spdlog::error("get {}: {}", PrintableName(ns, key), std::string(v.message()));
      store_.AbortReceiving(ns, key, v);
      store_.Unpin(*f.hold);
      f.hold.reset();
      f.last_failure = v;
      ++counters_.retries;
      Report(ns, key, reply.sender(), proto::ReportTransferRequest::SENDER_FAILED, std::string(v.message()), stats,
             f.incarnation);
      f.exclude.push_back(reply.sender());
      return false;
    }
    if (absl::Status fin = store_.FinishReceiving(ns, key); !fin.ok()) return GiveUp(f, fin, reply.sender(), true);
    Report(ns, key, reply.sender(), proto::ReportTransferRequest::COMPLETED, "", stats, f.incarnation);
    return true;
  }
  // Past the deadline, or the object was deleted (on the sender, or our copy here): no other
  // sender will do better.
  if (s.code() == absl::StatusCode::kDeadlineExceeded || IsObjectDeleted(s)) return GiveUp(f, s, reply.sender(), true);
  ++counters_.retries;
  f.last_failure = s;
  spdlog::warn("get {}: sender {} failed ({}); re-planning", PrintableName(ns, key), reply.sender(), std::string(s.message()));
  Report(ns, key, reply.sender(), proto::ReportTransferRequest::SENDER_FAILED, std::string(s.message()), stats,
         f.incarnation);
  f.exclude.push_back(reply.sender());
  return false;
}

// Ends a failed FetchRemote: drops our partial copy, and reports ABORTED exactly once if the
// coordinator had attached us (`attached`, or we hold a partial copy). The error names the
// last sender failure too when it differs from `why`.
absl::Status Node::GiveUp(Fetch& f, absl::Status why, uint64_t sender, bool attached) {
  const bool had_copy = f.hold.has_value();
  if (had_copy) {
    store_.AbortReceiving(f.ns, f.key, why);
    store_.Unpin(*f.hold);
    f.hold.reset();
  }
  if (had_copy || attached) {
    Report(f.ns, f.key, sender, proto::ReportTransferRequest::ABORTED, std::string(why.message()), {});
    *f.abort_reported = true;
  }
  if (!f.last_failure.ok() && why.code() != f.last_failure.code()) {
    return absl::Status(why.code(), absl::StrCat(why.message(), " (last sender failure: ", f.last_failure.message(), ")"));
  }
  return why;
}

// The key appeared on this node while we were attached as its receiver (a local Put): give
// the attachment back (ABORTED drops only a partial copy in the plan, never the complete one
// the Put publishes) and let GetReporting read the local copy (ALREADY_EXISTS tells it to).
absl::Status Node::AlreadyHere(Fetch& f, absl::Status why) {
  Report(f.ns, f.key, 0, proto::ReportTransferRequest::ABORTED, "the key was put on this node meanwhile", {},
         f.incarnation);
  *f.abort_reported = true;
  return absl::AlreadyExistsError(why.message());
}

absl::Status Node::PullFromSender(const PullSpec& spec, PullStats* total) {
  // A sender attached a moment before it has created its receiving copy holds our requests
  // until it has (ChunkServer), so NOT_FOUND here means the object is not coming from it.
  PullStats stats;
  absl::Status s = puller_.Pull(spec, &stats);
  counters_.bytes_received += stats.bytes;
  counters_.chunks_received += stats.chunks;
  total->bytes += stats.bytes;
  total->chunks += stats.chunks;
  total->seconds += stats.seconds;
  if (total->first_chunk_s == 0) total->first_chunk_s = stats.first_chunk_s;
  return s;
}

void Node::Report(const std::string& ns, const std::string& key, uint64_t sender,
                  proto::ReportTransferRequest::Outcome outcome, const std::string& detail, const PullStats& stats,
                  uint64_t incarnation) {
  proto::ReportTransferRequest req;
  req.set_node_id(options_.node_id);
  *req.mutable_ref() = Ref(ns, key);
  req.set_sender(sender);
  req.set_outcome(outcome);
  req.set_detail(detail);
  req.set_bytes(stats.bytes);
  req.set_seconds(stats.seconds);
  req.set_incarnation(incarnation);
  reports_->Push(std::move(req));
}

void Node::SendReport(const proto::ReportTransferRequest& req) {
  proto::ReportTransferReply reply;
  auto ctx = Context(kRpcTimeout);
  grpc::Status s = stub_->ReportTransfer(ctx.get(), req, &reply);
  if (!s.ok()) spdlog::warn("reporting transfer of {}: {}", PrintableName(req.ref().ns(), req.ref().key()), s.error_message());
}

void Node::FlushReports() {
  if (!reports_->Flush(absl::Now() + kRpcTimeout)) {
    spdlog::warn("transfer reports still queued after {}; going on", absl::FormatDuration(kRpcTimeout));
  }
}

void Node::RecordMeasurement(const PullStats& stats, uint32_t chunk_size, uint64_t sender, bool sender_complete) {
  if (stats.seconds <= 0) return;
  // Bandwidth: only transfers long enough to say something about the link.
  if (stats.bytes >= (8u << 20)) {
    const double bw = static_cast<double>(stats.bytes) / stats.seconds;
    const double old_bw = bandwidth_bps_.load();
    bandwidth_bps_.store(old_bw == 0 ? bw : 0.7 * old_bw + 0.3 * bw);
  }
  // Per-hop latency: time to the first chunk beyond its bytes, from a sender that already
  // held it (from a partial copy it also includes waiting for upstream). The minimum of the
  // last samples drops the ones that paid for connection setup or a busy sender.
  const double bw = bandwidth_bps_.load();
  if (!sender_complete || bw <= 0 || stats.first_chunk_s <= 0) return;
  const double sample = std::max(10e-6, stats.first_chunk_s - std::min<double>(chunk_size, stats.bytes) / bw);
  std::lock_guard<std::mutex> lock(mu_);
  // The first pull from a peer also sets up the connection (UCX wire-up: milliseconds).
  if (latency_peers_.insert(sender).second) return;
  latency_samples_.push_back(sample);
  if (latency_samples_.size() > kLatencySamples) latency_samples_.pop_front();
  latency_s_.store(*std::min_element(latency_samples_.begin(), latency_samples_.end()));
}

absl::Status Node::DeleteObject(const std::string& ns, const std::string& key) {
  if (absl::Status s = ValidateObjectName(ns, key); !s.ok()) return s;
  proto::DeleteRequest req;
  *req.mutable_ref() = Ref(ns, key);
  proto::DeleteReply reply;
  FlushReports();
  auto ctx = Context(kRpcTimeout);
  grpc::Status s = stub_->Delete(ctx.get(), req, &reply);
  absl::Status local = store_.Delete(ns, key);
  if (s.ok() || (s.error_code() == grpc::StatusCode::NOT_FOUND && local.ok())) return absl::OkStatus();
  return FromGrpc(s);
}

absl::StatusOr<proto::ListReply> Node::List(const std::string& ns, const std::string& prefix, uint32_t limit) {
  proto::ListRequest req;
  req.set_ns(ns);
  req.set_prefix(prefix);
  req.set_limit(limit);
  proto::ListReply reply;
  auto ctx = Context(kRpcTimeout);
  grpc::Status s = stub_->List(ctx.get(), req, &reply);
  if (!s.ok()) return FromGrpc(s);
  return reply;
}

absl::StatusOr<proto::ClusterStatusReply> Node::ClusterStatus() {
  proto::ClusterStatusRequest req;
  proto::ClusterStatusReply reply;
  auto ctx = Context(absl::Seconds(3));
  grpc::Status s = stub_->ClusterStatus(ctx.get(), req, &reply);
  if (!s.ok()) return FromGrpc(s);
  return reply;
}

absl::StatusOr<proto::BroadcastReply> Node::Broadcast(const proto::BroadcastRequest& req) {
  proto::BroadcastReply reply;
  FlushReports();
  auto ctx = Context(absl::Milliseconds(req.timeout_ms()) + absl::Seconds(10));
  grpc::Status s = stub_->Broadcast(ctx.get(), req, &reply);
  if (!s.ok()) return FromGrpc(s);
  return reply;
}

void Node::OnEvicted(const std::string& ns, const std::string& key) {
  spdlog::info("evicted {} from the arena (unpinned, least recently used) to make room", PrintableName(ns, key));
  proto::UnpublishRequest req;
  req.set_node_id(options_.node_id);
  *req.mutable_ref() = Ref(ns, key);
  req.set_reason(proto::UnpublishRequest::EVICTED);
  proto::UnpublishReply reply;
  FlushReports();
  auto ctx = Context(kRpcTimeout);
  grpc::Status s = stub_->Unpublish(ctx.get(), req, &reply);
  if (!s.ok()) spdlog::warn("unpublishing evicted {}: {}", PrintableName(ns, key), s.error_message());
}

void Node::SessionLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  while (!stopping_.load()) {
    const absl::Time began = absl::Now();
    RunSession();
    connected_.store(false);
    if (stopping_.load()) break;
    if (absl::Now() - began > absl::Seconds(5)) backoff = absl::Milliseconds(100);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(backoff), [this] { return stopping_.load(); });
    backoff = std::min(backoff * 2, absl::Seconds(2));
  }
}

void Node::RunSession() {
  grpc::ClientContext ctx;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_.load()) return;
    session_ctx_ = &ctx;
  }
  auto stream = stub_->Session(&ctx);
  proto::NodeMessage hello_msg;
  proto::Hello* hello = hello_msg.mutable_hello();
  proto::NodeInfo* info = hello->mutable_node();
  info->set_node_id(options_.node_id);
  info->set_name(options_.name);
  info->set_dp_address(transport_->LocalAddress());
  info->set_transport(std::string(transport_->Name()));
  info->set_arena_bytes(arena_->size());
  (*info->mutable_resources())["host_mem"] = static_cast<double>(arena_->size());
  for (const auto& [k, v] : options_.labels) (*info->mutable_labels())[k] = v;
  hello->set_cluster_token(options_.token);
  hello->set_session_secret(session_secret_);
  for (const ListedLocal& o : store_.ListSealed()) {
    proto::HeldObject* held = hello->add_holdings();
    *held->mutable_ref() = Ref(o.ns, o.key);
    SetMeta(o.meta, held->mutable_meta());
    if (o.meta.size <= inline_max_.load()) {
      if (absl::StatusOr<PinnedObject> pin = store_.PinInternal(o.ns, o.key); pin.ok()) {
        held->set_inline_data(reinterpret_cast<const char*>(arena_->base() + pin->offset), o.meta.size);
        store_.Unpin(*pin);
      }
    }
  }
  std::thread heartbeat;
  std::mutex hb_mu;
  std::condition_variable hb_cv;
  bool hb_stop = false;
  {
    // A new session (maybe with a restarted coordinator) counts epochs anew: it starts with
    // a snapshot (see HandleMembership).
    std::lock_guard<std::mutex> lock(mu_);
    membership_epoch_ = 0;
  }
  if (stream->Write(hello_msg)) {
    proto::CoordMessage msg;
    while (stream->Read(&msg)) {
      if (msg.has_welcome()) {
        HandleWelcome(msg.welcome());
        spdlog::info("registered with coordinator {} as {} ({})", options_.coordinator, options_.name, options_.node_id);
        const auto interval = std::chrono::milliseconds(std::max<uint32_t>(msg.welcome().heartbeat_interval_ms(), 10));
        if (!heartbeat.joinable()) {
          heartbeat = std::thread([&, interval] {
            std::unique_lock<std::mutex> lock(hb_mu);
            for (uint64_t seq = 1; !hb_stop; ++seq) {
              proto::NodeMessage hb;
              StoreStats st = store_.Stats();
              hb.mutable_heartbeat()->set_seq(seq);
              hb.mutable_heartbeat()->set_bandwidth_bps(bandwidth_bps_.load());
              hb.mutable_heartbeat()->set_latency_s(latency_s_.load());
              hb.mutable_heartbeat()->set_arena_used(st.used);
              hb.mutable_heartbeat()->set_objects(st.objects);
              if (!stream->Write(hb)) break;
              ExpireUnconfirmedPeers();
              hb_cv.wait_for(lock, interval, [&] { return hb_stop; });
            }
          });
        }
      } else if (msg.has_membership()) {
        HandleMembership(msg.membership());
      } else if (msg.has_pull()) {
        HandlePull(msg.pull());
      } else if (msg.has_drop()) {
        HandleDrop(msg.drop());
        if (msg.drop().op_id() != 0) {
          proto::NodeMessage done;
          done.mutable_drop_done()->set_op_id(msg.drop().op_id());
          std::lock_guard<std::mutex> lock(hb_mu);   // one writer at a time (the heartbeat writes too)
          stream->Write(done);
        }
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(hb_mu);
    hb_stop = true;
  }
  hb_cv.notify_all();
  if (heartbeat.joinable()) heartbeat.join();
  grpc::Status s = stream->Finish();
  const bool refused = IsRefusal(s.error_code());
  {
    std::lock_guard<std::mutex> lock(mu_);
    session_ctx_ = nullptr;
    if (refused) {
      refusal_ = absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                              absl::StrCat("coordinator ", options_.coordinator, " refused node '", options_.name,
                                           "': ", s.error_message()));
    }
  }
  cv_.notify_all();
  if (refused) {
    spdlog::error("coordinator {} refused this node's registration: {}", options_.coordinator, s.error_message());
  } else if (!stopping_.load()) {
    spdlog::warn("coordinator session ended: {}", s.ok() ? "closed" : s.error_message());
  }
}

void Node::HandleMembership(const proto::Membership& m) {
  // One snapshot after Welcome, then one delta per change, in epoch order on this session
  // (docs/protocol.md "Membership"). A delta that does not follow the last epoch means this
  // view can no longer be trusted: end the session; the next one starts with a snapshot.
  std::vector<uint64_t> gone;
  std::vector<std::pair<uint64_t, std::string>> added;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<uint64_t, std::string> now = peers_;
    if (absl::Status s = control::ApplyMembership(m, options_.node_id, &membership_epoch_, &now); !s.ok()) {
      spdlog::error("coordinator session: {}; reconnecting for a fresh snapshot", std::string(s.message()));
      if (session_ctx_ != nullptr) session_ctx_->TryCancel();
      return;
    }
    const bool grace = absl::Now() < removal_grace_until_;
    for (const auto& [id, addr] : peers_) {
      if (now.contains(id)) continue;
      if (grace) {
        unconfirmed_peers_[id] = addr;   // kept until the grace ends (ExpireUnconfirmedPeers)
      } else {
        gone.push_back(id);
      }
    }
    for (const auto& [id, addr] : now) {
      unconfirmed_peers_.erase(id);
      auto it = peers_.find(id);
      if (it == peers_.end() || it->second != addr || !transport_->HasPeer(id)) added.emplace_back(id, addr);
    }
    peers_ = std::move(now);
  }
  for (uint64_t id : gone) transport_->RemovePeer(id);   // fails pulls from dead nodes at once
  for (const auto& [id, addr] : added) {
    if (absl::Status s = transport_->AddPeer(id, addr); !s.ok()) spdlog::warn("adding peer {}: {}", id, std::string(s.message()));
  }
}

void Node::HandleWelcome(const proto::Welcome& w) {
  inline_max_.store(w.inline_max_bytes());
  std::vector<uint64_t> reset;
  {
    std::lock_guard<std::mutex> lock(mu_);
    refusal_ = absl::OkStatus();
    connected_.store(true);
    if (w.was_declared_dead()) {
      // Everyone dropped us and closed their connections to us: ours to them are stale.
      for (const auto& [id, addr] : peers_) reset.push_back(id);
      for (const auto& [id, addr] : unconfirmed_peers_) reset.push_back(id);
      removal_grace_until_ = absl::InfinitePast();
    } else {
      removal_grace_until_ = absl::Now() + absl::Milliseconds(w.liveness_timeout_ms());
    }
  }
  cv_.notify_all();
  if (!reset.empty()) spdlog::warn("the coordinator had declared this node dead: resetting {} peer connection(s)", reset.size());
  for (uint64_t id : reset) transport_->ResetPeer(id);
}

void Node::ExpireUnconfirmedPeers() {
  std::vector<uint64_t> gone;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (unconfirmed_peers_.empty() || absl::Now() < removal_grace_until_) return;
    for (const auto& [id, addr] : unconfirmed_peers_) gone.push_back(id);
    unconfirmed_peers_.clear();
  }
  for (uint64_t id : gone) transport_->RemovePeer(id);
}

void Node::HandleDrop(const proto::DropInstruction& drop) {
  const std::string& ns = drop.ref().ns();
  const std::string& key = drop.ref().key();
  if (!ValidateObjectName(ns, key).ok()) return;
  if (store_.Drop(ns, key, drop.incarnation())) {
    spdlog::debug("dropped {} (incarnation {}): deleted cluster-wide", PrintableName(ns, key), drop.incarnation());
  }
}

void Node::HandlePull(const proto::PullInstruction& pull) {
  if (pull.is_inline()) {
    // A small object arrives with the instruction: store it right here, no pull.
    const std::string& ns = pull.ref().ns();
    const std::string& key = pull.ref().key();
    absl::Status s = ValidateObjectName(ns, key);
    if (s.ok() && !store_.Contains(ns, key)) s = StoreInline(ns, key, pull.meta(), pull.inline_data());
    if (s.ok() || store_.Contains(ns, key)) {
      Report(ns, key, 0, proto::ReportTransferRequest::COMPLETED, "", {}, pull.meta().incarnation());
    } else {
      Report(ns, key, 0, proto::ReportTransferRequest::ABORTED, std::string(s.message()), {});
    }
    return;
  }
  absl::Status submitted = broadcast_pulls_.Submit([this, pull] {
    const absl::Time deadline = absl::FromUnixMillis(pull.deadline_unix_ms());
    bool abort_reported = false;
    const proto::AcquireSourceReply* planned = pull.has_source() ? &pull.source() : nullptr;
    absl::StatusOr<GetResult> r =
        GetReporting(pull.ref().ns(), pull.ref().key(), kInternalSession, deadline, planned, &abort_reported);
    if (r.ok()) {
      // The coordinator attached us, but the copy was here already (or another Get pulled
      // it): say so, which also frees the sender slot it reserved for us.
      if (planned != nullptr && !r->pulled) {
        Report(pull.ref().ns(), pull.ref().key(), planned->sender(), proto::ReportTransferRequest::COMPLETED, "", {},
               planned->meta().incarnation());
      }
      store_.Unpin(r->pin);
    } else {
      spdlog::warn("broadcast pull of {} failed: {}", PrintableName(pull.ref().ns(), pull.ref().key()), std::string(r.status().message()));
      // The broadcast waits for every target's outcome: report the failure unless the pull did.
      if (!abort_reported) {
        Report(pull.ref().ns(), pull.ref().key(), 0, proto::ReportTransferRequest::ABORTED,
               std::string(r.status().message()), {});
      }
    }
  });
  if (!submitted.ok()) {
    spdlog::warn("dropping pull instruction for {}: {}", PrintableName(pull.ref().ns(), pull.ref().key()),
                 std::string(submitted.message()));
    // The coordinator may have attached us already; say we will not pull, so nobody waits
    // on a copy that never grows.
    Report(pull.ref().ns(), pull.ref().key(), 0, proto::ReportTransferRequest::ABORTED,
           absl::StrCat("this node refused the pull: ", submitted.message()), {});
  }
}

std::string Node::MetricsText() {
  StoreStats st = store_.Stats();
  TransportStats ts = transport_->Stats();
  std::string out;
  auto gauge = [&out](const char* name, double v) { absl::StrAppend(&out, "ferry_", name, " ", v, "\n"); };
  gauge("arena_bytes", st.capacity);
  gauge("arena_used_bytes", st.used);
  gauge("objects", st.objects);
  gauge("objects_pinned", st.pinned);
  gauge("evictions_total", st.evictions);
  gauge("bytes_received_total", counters_.bytes_received.load());
  gauge("chunks_received_total", counters_.chunks_received.load());
  gauge("bytes_served_total", server_.bytes_served());
  gauge("chunks_served_total", server_.chunks_served());
  gauge("pulls_total", counters_.pulls.load());
  gauge("retries_total", counters_.retries.load());
  gauge("get_failures_total", counters_.failures.load());
  gauge("transport_peer_failures_total", ts.peer_failures);
  gauge("transport_invalid_peer_addresses_total", ts.invalid_peer_addresses);
  gauge("checksum_mismatches_total", counters_.checksum_mismatches.load());
  gauge("measured_bandwidth_bytes_per_second", bandwidth_bps_.load());
  gauge("measured_latency_seconds", latency_s_.load());
  gauge("coordinator_connected", connected_.load() ? 1 : 0);
  return out;
}

}  // namespace ferry::dataplane
