// UCX transport: setup, teardown and the public API (which only queues work for the progress
// thread). The progress thread, operations and UCX callbacks are in ucx_progress.cc; the
// model is described in ucx_transport.h and ucx_transport_impl.h.
#include "dataplane/ucx/ucx_transport.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "dataplane/ucx/streaming_copy.h"
#include "dataplane/ucx/ucx_log.h"
#include "dataplane/ucx/ucx_transport_impl.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {
namespace ucx_internal {

using ucx::UcsError;

// ---- setup / teardown -----------------------------------------------------------------------

namespace {

// The generic receive datatype behind ReceiveCopy::kStreaming: UCX hands each fragment to
// Unpack, which copies it with streaming stores. Element = byte, so count = bytes. Pack is
// there for completeness (UCX may size or pack any datatype); ferry only receives with it.
struct DtState {
  uint8_t* buffer;
  size_t length;
};

void* DtStartPack(void*, const void* buffer, size_t count) {
  return new DtState{static_cast<uint8_t*>(const_cast<void*>(buffer)), count};
}

void* DtStartUnpack(void*, void* buffer, size_t count) {
  return new DtState{static_cast<uint8_t*>(buffer), count};
}

size_t DtPackedSize(void* state) { return static_cast<DtState*>(state)->length; }

size_t DtPack(void* state, size_t offset, void* dest, size_t max_length) {
  auto* s = static_cast<DtState*>(state);
  if (offset >= s->length) return 0;
  const size_t n = std::min(max_length, s->length - offset);
  std::memcpy(dest, s->buffer + offset, n);
  return n;
}

ucs_status_t DtUnpack(void* state, size_t offset, const void* src, size_t length) {
  auto* s = static_cast<DtState*>(state);
  if (offset > s->length || length > s->length - offset) return UCS_ERR_MESSAGE_TRUNCATED;
  ucx::StreamingCopy(s->buffer + offset, src, length);
  return UCS_OK;
}

void DtFinish(void* state) { delete static_cast<DtState*>(state); }

ucp_generic_dt_ops_t kStreamingDtOps = {&DtStartPack, &DtStartUnpack, &DtPackedSize,
                                        &DtPack,      &DtUnpack,      &DtFinish};

}  // namespace

absl::Status UcxTransport::InitReceiveCopy() {
  if (options_.receive_copy != UcxTransportOptions::ReceiveCopy::kStreaming) return absl::OkStatus();
  ucp_datatype_t dt = 0;
  ucs_status_t st = ucp_dt_create_generic(&kStreamingDtOps, nullptr, &dt);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_dt_create_generic");
  streaming_dt_ = dt;
  spdlog::debug("ucx: rendezvous replies of {} bytes and more land with streaming stores",
                options_.streaming_copy_min);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Transport>> UcxTransport::Create(
    const UcxTransportOptions& options) {
  std::unique_ptr<UcxTransport> t(new UcxTransport(options));
  absl::Status st = t->Init();
  if (!st.ok()) return st;
  return std::unique_ptr<Transport>(std::move(t));
}

absl::Status UcxTransport::Init() {
  ucx::InstallUcxLogFilter();  // before the first worker: UCX's handler list is not locked
  auto q = ucx::WorkQueue::Create();
  if (!q.ok()) return q.status();
  queue_ = *std::move(q);
  auto ctx = ucx::UcxContext::Create(UCP_FEATURE_AM | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP,
                                     options_.ucx_defaults, options_.ucx_config);
  if (!ctx.ok()) return ctx.status();
  context_ = *std::move(ctx);
  auto worker = ucx::UcxWorker::Create(context_.get());
  if (!worker.ok()) return worker.status();
  worker_ = *std::move(worker);
  auto addr = worker_.Address(options_.net_only_address);
  if (!addr.ok()) return addr.status();
  // Peers validate this address before they connect (ucx_address.h); if it does not pass
  // here, no peer could use it, so fail at start-up and say why.
  if (absl::Status s = ucx::ValidateWorkerAddress(*addr); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "ucx: this node's own worker address does not pass ferry's validation of UCX 1.13 "
        "addresses (", s.message(), "); check UCX_ADDRESS_VERSION and the UCX version"));
  }
  address_ = ucx::EncodeAddress(options_.self, *addr);
  ucs_status_t st = ucp_worker_get_efd(worker_.get(), &worker_fd_);
  if (st != UCS_OK) return UcsError(st, "ucx: ucp_worker_get_efd");
  if (absl::Status s = InitReceiveCopy(); !s.ok()) return s;
  const std::pair<unsigned, ucp_am_recv_callback_t> handlers[] = {
      {ucx::kFetchRequestAm, &OnRequestAm},
      {ucx::kFetchReplyAm, &OnReplyAm},
      {ucx::kControlAm, &OnControlAm}};
  for (const auto& [id, cb] : handlers) {
    ucp_am_handler_param_t p = {};
    p.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                   UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG;
    p.id = id;
    p.flags = UCP_AM_FLAG_WHOLE_MSG;
    p.cb = cb;
    p.arg = this;
    st = ucp_worker_set_am_recv_handler(worker_.get(), &p);
    if (st != UCS_OK) return UcsError(st, "ucx: ucp_worker_set_am_recv_handler");
  }
  absl::Notification started;
  thread_ = std::thread([this, &started] {
    thread_id_ = std::this_thread::get_id();
    started.Notify();
    Loop();
  });
  started.WaitForNotification();
  return absl::OkStatus();
}

UcxTransport::~UcxTransport() {
  Shutdown();
  conns_.clear();
  ops_.clear();
  worker_.Reset();
  if (streaming_dt_) ucp_dt_destroy(*streaming_dt_);
  memhs_.clear();
  context_.Reset();
}

void UcxTransport::Shutdown() {
  if (thread_id_ == std::thread::id()) return;  // Init failed before the thread started
  if (OnProgressThread()) {  // from a callback: cannot join ourselves
    stop_requested_ = true;
    return;
  }
  absl::MutexLock lock(&shutdown_mu_);
  if (!thread_.joinable()) return;
  queue_->Push([this] { stop_requested_ = true; });
  thread_.join();
}

void UcxTransport::Post(WorkQueue::Task task) {
  // After Shutdown the queue is closed and the task (with its Done) is dropped: no callback
  // runs after Shutdown.
  queue_->Push(std::move(task));
}

// ---- public API -------------------------------------------------------------------------------

absl::Status UcxTransport::AddPeer(NodeId peer, std::string_view address) {
  absl::StatusOr<ucx::DecodedAddress> decoded = ucx::DecodeAddress(address);
  absl::Status refused;
  if (!decoded.ok()) {
    refused = decoded.status();
  } else if (decoded->node != peer) {
    refused = absl::InvalidArgumentError(absl::StrCat("address belongs to node ", decoded->node));
  }
  if (!refused.ok()) return RefusePeer(peer, address, refused);
  std::string worker_address(decoded->worker_address);
  {
    absl::MutexLock lock(&peers_mu_);
    peer_addresses_[peer] = worker_address;
    refused_.erase(peer);
  }
  Post([this, peer, worker_address = std::move(worker_address)]() mutable {
    auto it = conns_.find(peer);
    if (it != conns_.end() && it->second.worker_address != worker_address) {
      DropConnection(peer);
      FailPeerOps(peer, absl::UnavailableError(absl::StrCat(
                            "ucx: node ", peer, " was re-added with a new address")));
    }
    conns_[peer].worker_address = std::move(worker_address);
    ReleaseHeld(peer);
  });
  return absl::OkStatus();
}

namespace {
constexpr size_t kMaxRefusedRemembered = 1024;  // peers whose refused blob we remember
}  // namespace

// The peer keeps whatever address it had before (none, or an older valid one). Logged once
// per (peer, blob): membership updates repeat the same bad address.
absl::Status UcxTransport::RefusePeer(NodeId peer, std::string_view address,
                                      const absl::Status& why) {
  stats_.invalid_peer_addresses.fetch_add(1, std::memory_order_relaxed);
  absl::Status st = absl::InvalidArgumentError(
      absl::StrCat("ucx: AddPeer(node ", peer, "): refused: ", why.message()));
  bool first;
  {
    absl::MutexLock lock(&peers_mu_);
    if (refused_.size() >= kMaxRefusedRemembered && !refused_.contains(peer)) refused_.clear();
    auto [it, inserted] = refused_.try_emplace(peer, address);
    first = inserted || it->second != address;
    it->second = std::string(address);
  }
  if (first) spdlog::warn("{}", std::string(st.message()));
  return st;
}

void UcxTransport::RemovePeer(NodeId peer) {
  {
    absl::MutexLock lock(&peers_mu_);
    peer_addresses_.erase(peer);
    refused_.erase(peer);
  }
  Post([this, peer] {
    DropConnection(peer);
    conns_.erase(peer);
    FailPeerOps(peer, absl::UnavailableError(absl::StrCat("ucx: node ", peer, " was removed")));
  });
}

bool UcxTransport::HasPeer(NodeId peer) const {
  absl::MutexLock lock(&peers_mu_);
  return peer_addresses_.contains(peer);
}

absl::StatusOr<MemoryRegion> UcxTransport::RegisterMemory(MemoryKind kind, void* base, size_t length) {
  if (absl::Status s = CheckSupportedKind(kind, "ucx: RegisterMemory"); !s.ok()) return s;
  if (base == nullptr || length == 0) {
    return absl::InvalidArgumentError("ucx: RegisterMemory needs a non-empty range");
  }
  absl::StatusOr<MemoryRegion> result = absl::InternalError("ucx: RegisterMemory did not run");
  auto work = [&] {
    auto memh = ucx::UcxMemHandle::Map(context_.get(), base, length);
    if (!memh.ok()) {
      result = memh.status();
      return;
    }
    auto key = memh->PackRkey();
    if (!key.ok()) {
      result = key.status();
      return;
    }
    // On the progress thread, so ids and memhs_ stay in step.
    absl::StatusOr<RegionId> id = regions_.Add(kind, base, length);
    if (!id.ok()) {
      result = id.status();
      return;
    }
    memhs_.push_back(*std::move(memh));
    result = MemoryRegion{*id, kind, base, length,
                          EncodeRemoteKey(RemoteKey{kind, reinterpret_cast<uint64_t>(base), length, *std::move(key)})};
  };
  if (OnProgressThread()) {
    work();
    return result;
  }
  absl::Notification done;
  bool queued = queue_->Push([&] {
    work();
    done.Notify();
  });
  if (!queued) return absl::FailedPreconditionError("ucx: RegisterMemory after Shutdown");
  done.WaitForNotification();
  return result;
}

FetchId UcxTransport::Fetch(NodeId peer, std::string header, LocalSlice dst, Done done) {
  const uint64_t id = next_op_id_.fetch_add(1);
  Post([this, id, peer, header = std::move(header), dst, done = std::move(done)]() mutable {
    StartFetch(id, peer, std::move(header), dst, std::move(done));
  });
  return id;
}

// Queued behind the Fetch that returned `id` (the queue is FIFO), so the progress thread
// finds the fetch outstanding unless it has completed.
void UcxTransport::CancelFetch(FetchId id) {
  if (id == 0) return;
  Post([this, id] { CancelOnThread(id); });
}

void UcxTransport::ResetPeer(NodeId peer) {
  Post([this, peer] { ResetOnThread(peer); });
}

void UcxTransport::Read(NodeId peer, RemoteSlice src, LocalSlice dst, Done done) {
  Post([this, peer, src = std::move(src), dst, done = std::move(done)]() mutable {
    StartRead(peer, std::move(src), dst, std::move(done));
  });
}

void UcxTransport::SendControl(NodeId peer, std::string bytes, Done done) {
  Post([this, peer, bytes = std::move(bytes), done = std::move(done)]() mutable {
    StartControl(peer, std::move(bytes), std::move(done));
  });
}

TransportStats UcxTransport::Stats() const {
  TransportStats s;
  s.bytes_fetched = stats_.bytes_fetched.load();
  s.bytes_served = stats_.bytes_served.load();
  s.fetches = stats_.fetches.load();
  s.reads = stats_.reads.load();
  s.failures = stats_.failures.load();
  s.peer_failures = stats_.peer_failures.load();
  s.dropped_requests = stats_.dropped_requests.load();
  s.invalid_peer_addresses = stats_.invalid_peer_addresses.load();
  return s;
}

}  // namespace ucx_internal

absl::StatusOr<UcxTransportOptions::ReceiveCopy> ParseReceiveCopy(std::string_view text) {
  using ReceiveCopy = UcxTransportOptions::ReceiveCopy;
  if (text == "ucx") return ReceiveCopy::kUcx;
  if (text == "streaming") return ReceiveCopy::kStreaming;
  return absl::InvalidArgumentError(
      absl::StrCat("receive copy '", std::string(text), "' is not one of ucx, streaming"));
}

absl::StatusOr<std::unique_ptr<Transport>> CreateUcxTransport(const UcxTransportOptions& options) {
  return ucx_internal::UcxTransport::Create(options);
}

}  // namespace ferry::dataplane
