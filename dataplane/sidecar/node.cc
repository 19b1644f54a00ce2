#include "dataplane/sidecar/node.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/names.h"
#include "common/status_macros.h"
#include "dataplane/sidecar/grpc_coordinator_client.h"
#include "dataplane/sidecar/node_proto.h"
#include "spdlog/spdlog.h"
#include "xxhash.h"

namespace ferry::dataplane {
namespace {

std::string RandomSecret() {
  std::random_device rd;
  std::string out(16, '\0');
  for (char& c : out) c = static_cast<char>(rd());
  return out;
}

}  // namespace

uint64_t Node::NewNodeId() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  uint64_t id = 0;
  while (id == 0) id = gen() >> 1;
  return id;
}

absl::StatusOr<std::unique_ptr<Node>> Node::Create(NodeOptions options, std::unique_ptr<shm::Arena> arena,
                                                   std::unique_ptr<Transport> transport,
                                                   std::unique_ptr<CoordinatorClient> coordinator) {
  if (options.name.empty()) return absl::InvalidArgumentError("node name is empty");
  if (coordinator == nullptr) {
    if (options.coordinator.empty()) return absl::InvalidArgumentError("coordinator address is empty");
    coordinator = std::make_unique<GrpcCoordinatorClient>(options.coordinator);
  }
  if (options.node_id == 0) options.node_id = NewNodeId();
  if (options.pack_buffers == 0 || options.pack_buffer_bytes < 4096 || options.pack_buffer_bytes > (64u << 20)) {
    return absl::InvalidArgumentError(absl::StrCat("pack buffers: ", options.pack_buffers, " of ",
                                                   options.pack_buffer_bytes,
                                                   " bytes; at least one of 4 KiB to 64 MiB is needed"));
  }
  std::unique_ptr<Node> node(new Node(std::move(options), std::move(arena), std::move(transport), std::move(coordinator)));
  if (absl::Status s = node->SetUpPacks(); !s.ok()) return s;
  if (absl::Status s = node->SetUpReduce(); !s.ok()) return s;
  return node;
}

Node::Mapping::~Mapping() {
  if (base != nullptr) munmap(base, length);
}

absl::Status Node::SetUpPacks() {
  const size_t half = size_t{options_.pack_buffers} * options_.pack_buffer_bytes;
  // Anonymous memory, populated on first use: an idle node pays no resident memory for it.
  void* mem = mmap(nullptr, 2 * half, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat("mapping ", 2 * half, " bytes of pack buffers: ", strerror(errno)));
  }
  pack_memory_.base = mem;
  pack_memory_.length = 2 * half;
  absl::StatusOr<MemoryRegion> serve = transport_->RegisterMemory(MemoryKind::kHost, mem, half);
  if (!serve.ok()) return serve.status();
  absl::StatusOr<MemoryRegion> receive =
      transport_->RegisterMemory(MemoryKind::kHost, static_cast<uint8_t*>(mem) + half, half);
  if (!receive.ok()) return receive.status();
  serve_packs_ = std::make_unique<PackBuffers>(*serve, options_.pack_buffer_bytes, options_.pack_buffers);
  receive_packs_ = std::make_unique<PackBuffers>(*receive, options_.pack_buffer_bytes, options_.pack_buffers);
  server_.EnablePacks(serve_packs_.get(), arena_->base());
  server_.Attach(transport_.get());
  BatchPullDeps deps;
  deps.fetcher = &fetcher_;
  deps.store = &store_;
  deps.transport = transport_.get();
  deps.packs = receive_packs_.get();
  deps.send = [this](const proto::NodeMessage& msg) { return session_->Send(msg); };
  batch_pulls_ = std::make_unique<BatchPullHandler>(std::move(deps), options_.max_batch_pulls);
  return absl::OkStatus();
}

absl::StatusOr<MemoryRegion> Node::MapScratch(uint32_t sets, uint64_t set_bytes, const char* what, Mapping& mapping) {
  const size_t bytes = size_t{sets} * set_bytes;
  // Anonymous memory, populated on first use, as the pack buffers.
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat("mapping ", bytes, " bytes of ", what, ": ", strerror(errno)));
  }
  mapping.base = mem;
  mapping.length = bytes;
  return transport_->RegisterMemory(MemoryKind::kHost, mem, bytes);
}

absl::Status Node::SetUpReduce() {
  const uint32_t reduce_sets = std::max<uint32_t>(options_.reduce_slot_sets, 1);
  absl::StatusOr<MemoryRegion> scratch = MapScratch(reduce_sets, ReduceHandler::kSetBytes, "reduce scratch", reduce_scratch_);
  if (!scratch.ok()) return scratch.status();
  ReduceDeps deps;
  deps.fetcher = &fetcher_;
  deps.store = &store_;
  deps.transport = transport_.get();
  deps.arena = MemoryRegion{options_.arena_region, MemoryKind::kHost, arena_->base(), arena_->size(), ""};
  deps.scratch = *scratch;
  deps.slot_sets = reduce_sets;
  deps.max_pull_rate_Bps = options_.max_pull_rate_Bps;
  deps.counters = &counters_;
  deps.send = [this](const proto::NodeMessage& msg) { return session_->Send(msg); };
  deps.publish = [this](const std::string& ns, const std::string& key) { return Publish(ns, key); };
  ReduceDeps program_deps = deps;
  reduces_ = std::make_unique<ReduceHandler>(std::move(deps), /*max_positions=*/256);

  const uint32_t program_sets = std::max<uint32_t>(options_.program_slot_sets, 1);
  scratch = MapScratch(program_sets, ProgramHandler::kSetBytes, "group-collective scratch", program_scratch_);
  if (!scratch.ok()) return scratch.status();
  program_deps.scratch = *scratch;
  program_deps.slot_sets = program_sets;
  program_deps.publish = nullptr;   // results are recorded by the coordinator from the report
  programs_ = std::make_unique<ProgramHandler>(std::move(program_deps), [this] { return uint64_t{inline_max_.load()}; });
  return absl::OkStatus();
}

Node::Node(NodeOptions options, std::unique_ptr<shm::Arena> arena, std::unique_ptr<Transport> transport,
           std::unique_ptr<CoordinatorClient> coordinator)
    : options_(std::move(options)),
      arena_(std::move(arena)),
      transport_(std::move(transport)),
      coordinator_(std::move(coordinator)),
      store_(arena_->size()),
      server_(&store_, options_.arena_region),
      reports_(options_.node_id, coordinator_.get()),
      fetcher_(FetchDeps{options_.node_id, arena_->base(), options_.arena_region, &store_, transport_.get(), coordinator_.get(), &reports_,
                         &links_, &counters_},
               FetchOptions{options_.window_override, options_.max_retries, options_.max_pull_rate_Bps}),
      session_secret_(RandomSecret()) {
  transport_->SetPeerFailureHandler([](NodeId peer, const absl::Status& why) {
    spdlog::warn("data-plane peer {} failed: {}", peer, std::string(why.message()));
  });
  store_.SetEvictionListener([this](const std::string& ns, const std::string& key) { OnEvicted(ns, key); });
  membership_ = std::make_unique<MembershipHandler>(options_.node_id, transport_.get());
  pulls_ = std::make_unique<PullHandler>(&fetcher_, &store_, &reports_, options_.max_broadcast_pulls);
  drops_ = std::make_unique<DropHandler>(&store_);
  SessionDeps deps;
  deps.node_name = options_.name;
  deps.node_id = options_.node_id;
  deps.client = coordinator_.get();
  deps.membership = membership_.get();
  deps.pulls = pulls_.get();
  deps.drops = drops_.get();
  deps.batch_pull = [this](const proto::BatchPullInstruction& ins) {
    if (batch_pulls_) batch_pulls_->Handle(ins);
  };
  deps.reduce = [this](const proto::ReducePosition& pos) {
    if (reduces_) reduces_->Handle(pos);
  };
  deps.program = [this](const proto::CollectiveProgram& program) {
    if (programs_) programs_->Handle(program);
  };
  deps.program_end = [this](const proto::ProgramEnd& end) {
    if (programs_) programs_->End(end);
  };
  deps.hello = [this] { return MakeHello(); };
  deps.heartbeat = [this] { return MakeHeartbeat(); };
  deps.on_welcome = [this](const proto::Welcome& w) {
    inline_max_.store(w.inline_max_bytes());
    bool deferred = false;
    {
      absl::MutexLock lock(&deferred_mu_);
      deferred = !deferred_.empty();
    }
    if (!deferred || stopped_.load()) return;
    if (republish_thread_.joinable()) republish_thread_.join();
    republish_thread_ = std::thread([this] { RepublishDeferred(); });
  };
  session_ = std::make_unique<CoordinatorSession>(std::move(deps));
}

Node::~Node() { Shutdown(); }

void Node::Start() { session_->Start(); }

absl::Status Node::WaitRegistered(absl::Duration timeout) { return session_->WaitRegistered(timeout); }

void Node::Shutdown() {
  if (stopped_.exchange(true)) return;
  // Every pull sees the fetcher's stop (PullSpec::stop) and coordinator calls are cancelled,
  // so the session's handlers and the broadcast pulls end; every thread is joined before
  // anything it uses goes away.
  fetcher_.Stop();
  coordinator_->Shutdown();
  session_->Stop();
  // No Welcome can start another one now (the session thread is joined).
  if (republish_thread_.joinable()) republish_thread_.join();
  pulls_->Shutdown();
  if (batch_pulls_) batch_pulls_->Shutdown();
  if (reduces_) reduces_->Shutdown();
  if (programs_) programs_->Shutdown();
  reports_.Stop();
  transport_->Shutdown();
}

proto::Hello Node::MakeHello() {
  proto::Hello hello;
  proto::NodeInfo* info = hello.mutable_node();
  info->set_node_id(options_.node_id);
  info->set_name(options_.name);
  info->set_dp_address(transport_->LocalAddress());
  info->set_transport(std::string(transport_->Name()));
  info->set_arena_bytes(arena_->size());
  (*info->mutable_resources())["host_mem"] = static_cast<double>(arena_->size());
  for (const auto& [k, v] : options_.labels) (*info->mutable_labels())[k] = v;
  hello.set_cluster_token(options_.token);
  hello.set_session_secret(session_secret_);
  // The Hello must stay well under the coordinator's 16 MiB message limit: small objects carry
  // their bytes only up to kHelloInlineBytes in all. The others are re-reported without them
  // (enough when the coordinator still has the entry, the usual case after this node's own
  // restart) and published again with their bytes right after the Welcome (RepublishDeferred).
  constexpr size_t kHelloInlineBytes = 8 << 20;
  size_t inline_bytes = 0;
  std::vector<std::pair<std::string, std::string>> deferred;
  for (const ListedLocal& o : store_.ListSealed()) {
    proto::HeldObject* held = hello.add_holdings();
    *held->mutable_ref() = Ref(o.ns, o.key);
    SetMeta(o.meta, held->mutable_meta());
    if (o.meta.size > inline_max_.load()) continue;
    if (inline_bytes + o.meta.size > kHelloInlineBytes) {
      deferred.emplace_back(o.ns, o.key);
      continue;
    }
    if (absl::StatusOr<PinnedObject> pin = store_.PinInternal(o.ns, o.key); pin.ok()) {
      held->set_inline_data(reinterpret_cast<const char*>(arena_->base() + pin->offset), o.meta.size);
      inline_bytes += o.meta.size;
      store_.Unpin(*pin);
    }
  }
  absl::MutexLock lock(&deferred_mu_);
  deferred_ = std::move(deferred);
  return hello;
}

proto::Heartbeat Node::MakeHeartbeat() {
  proto::Heartbeat hb;
  const StoreStats st = store_.Stats();
  hb.set_bandwidth_bps(links_.bandwidth_bps());
  hb.set_latency_s(links_.latency_s());
  hb.set_arena_used(st.used);
  hb.set_objects(st.objects);
  return hb;
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
  reports_.Flush();
  absl::Status s = coordinator_->Locate(req, &reply);
  if (s.ok()) {
    return absl::AlreadyExistsError(absl::StrCat("object ", PrintableName(ns, key), " already exists in the cluster"));
  }
  if (s.code() != absl::StatusCode::kNotFound && s.code() != absl::StatusCode::kDataLoss) {
    return absl::UnavailableError(absl::StrCat("cannot check ", PrintableName(ns, key),
                                               " with the coordinator: ", s.message()));
  }
  StoredMeta fresh = meta;
  fresh.incarnation = NewNodeId();   // this creation of the key
  fresh.checksummed = meta.checksummed || options_.checksum_all;
  fresh.checksum = 0;
  return store_.Create(ns, key, fresh, session);
}

absl::StatusOr<proto::PublishRequest> Node::PublishRequestFor(const std::string& ns, const std::string& key) {
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
  return req;
}

absl::StatusOr<proto::PublishRequest> Node::SealLocally(const std::string& ns, const std::string& key,
                                                       SessionId session) {
  uint64_t checksum = 0;
  if (absl::StatusOr<PinnedObject> writing = store_.PinInternal(ns, key); writing.ok()) {
    // Hash while pinned (the client asked to seal: it writes no more), before sealing.
    if (writing->meta.checksummed) checksum = XXH3_64bits(arena_->base() + writing->offset, writing->meta.size);
    store_.Unpin(*writing);
  }
  if (absl::Status s = store_.Seal(ns, key, session, checksum); !s.ok()) return s;
  return PublishRequestFor(ns, key);
}

absl::Status Node::PublishOutcome(const std::string& ns, const std::string& key, const absl::Status& s) {
  if (s.ok()) return absl::OkStatus();
  if (absl::Status refused = session_->refusal(); !refused.ok()) {
    // Not a passing outage: the coordinator will not take this node, so nothing it holds is
    // visible to the cluster. Say so instead of pretending the object was published.
    store_.Delete(ns, key).IgnoreError();
    return absl::FailedPreconditionError(absl::StrCat("publishing ", PrintableName(ns, key),
                                                      ": this node is not registered with the coordinator (",
                                                      refused.message(), ")"));
  }
  if (s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded ||
      s.code() == absl::StatusCode::kFailedPrecondition) {
    // Sealed here; it is re-reported when the coordinator session is (re-)established.
    spdlog::warn("publishing {}: {} (kept locally, will re-report)", PrintableName(ns, key), std::string(s.message()));
    return absl::OkStatus();
  }
  store_.Delete(ns, key).IgnoreError();
  return Annotate(s, absl::StrCat("publishing ", PrintableName(ns, key)));
}

absl::Status Node::Seal(const std::string& ns, const std::string& key, SessionId session) {
  absl::StatusOr<proto::PublishRequest> req = SealLocally(ns, key, session);
  if (!req.ok()) return req.status();
  reports_.Flush();
  return PublishOutcome(ns, key, coordinator_->Publish(*req));
}

absl::Status Node::Publish(const std::string& ns, const std::string& key) {
  absl::StatusOr<proto::PublishRequest> req = PublishRequestFor(ns, key);
  if (!req.ok()) return req.status();
  reports_.Flush();
  return coordinator_->Publish(*req);
}

absl::StatusOr<GetResult> Node::Get(const std::string& ns, const std::string& key, SessionId session,
                                    absl::Time deadline) {
  return fetcher_.Get(ns, key, session, deadline);
}

absl::Status Node::DeleteObject(const std::string& ns, const std::string& key) {
  if (absl::Status s = ValidateObjectName(ns, key); !s.ok()) return s;
  proto::DeleteRequest req;
  *req.mutable_ref() = Ref(ns, key);
  reports_.Flush();
  absl::Status s = coordinator_->Delete(req);
  absl::Status local = store_.Delete(ns, key);
  return DeleteOutcome(s, local);
}

absl::StatusOr<proto::ListReply> Node::List(const std::string& ns, const std::string& prefix, uint32_t limit) {
  proto::ListRequest req;
  req.set_ns(ns);
  req.set_prefix(prefix);
  req.set_limit(limit);
  proto::ListReply reply;
  if (absl::Status s = coordinator_->List(req, &reply); !s.ok()) return s;
  return reply;
}

absl::StatusOr<proto::ClusterStatusReply> Node::ClusterStatus() {
  proto::ClusterStatusReply reply;
  if (absl::Status s = coordinator_->ClusterStatus(&reply); !s.ok()) return s;
  return reply;
}

absl::StatusOr<proto::BroadcastReply> Node::Broadcast(const proto::BroadcastRequest& req) {
  proto::BroadcastReply reply;
  reports_.Flush();
  if (absl::Status s = coordinator_->Broadcast(req, &reply); !s.ok()) return s;
  return reply;
}

absl::StatusOr<proto::BroadcastBatchReply> Node::BroadcastBatch(const proto::BroadcastBatchRequest& req) {
  proto::BroadcastBatchReply reply;
  reports_.Flush();
  if (absl::Status s = coordinator_->BroadcastBatch(req, &reply); !s.ok()) return s;
  return reply;
}

absl::StatusOr<proto::ReduceReply> Node::Reduce(const proto::ReduceRequest& request, bool all) {
  proto::ReduceRequest req = request;
  req.set_requester(options_.node_id);
  proto::ReduceReply reply;
  reports_.Flush();
  if (absl::Status s = coordinator_->Reduce(req, all, &reply); !s.ok()) return s;
  if (!reply.store_result()) return reply;
  // A small reduce whose root is this node: the coordinator sent the result's bytes back.
  const std::string& ns = reply.result().ns();
  const std::string& key = reply.result().key();
  absl::Status stored = ValidateObjectName(ns, key);
  if (stored.ok()) stored = fetcher_.StoreInline(ns, key, reply.meta(), reply.result_data());
  reply.clear_result_data();
  reply.clear_store_result();
  const uint64_t incarnation = reply.meta().incarnation();
  if (!stored.ok()) {
    reports_.Report(TransferReport{ns, key, 0, proto::ReportTransferRequest::ABORTED, std::string(stored.message()), 0, 0,
                                   incarnation, 0});
    return absl::Status(stored.code(), absl::StrCat("the result ", PrintableName(ns, key),
                                                    " was made (the coordinator holds it) but could not be stored on "
                                                    "this node: ", stored.message()));
  }
  reports_.Report(TransferReport{ns, key, 0, proto::ReportTransferRequest::COMPLETED, "", reply.meta().size(), 0,
                                 incarnation, 0});
  return reply;
}

absl::StatusOr<proto::GroupReply> Node::Group(const proto::GroupRequest& req) {
  proto::GroupReply reply;
  reports_.Flush();
  if (absl::Status s = coordinator_->Group(req, &reply); !s.ok()) return s;
  return reply;
}

void Node::OnEvicted(const std::string& ns, const std::string& key) {
  spdlog::info("evicted {} from the arena (unpinned, least recently used) to make room", PrintableName(ns, key));
  proto::UnpublishRequest req;
  req.set_node_id(options_.node_id);
  *req.mutable_ref() = Ref(ns, key);
  req.set_reason(proto::UnpublishRequest::EVICTED);
  reports_.Flush();
  if (absl::Status s = coordinator_->Unpublish(req); !s.ok()) {
    spdlog::warn("unpublishing evicted {}: {}", PrintableName(ns, key), std::string(s.message()));
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
  gauge("measured_bandwidth_bytes_per_second", links_.bandwidth_bps());
  gauge("measured_latency_seconds", links_.latency_s());
  gauge("coordinator_connected", session_->connected() ? 1 : 0);
  return out;
}

}  // namespace ferry::dataplane
