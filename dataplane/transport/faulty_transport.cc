#include "dataplane/transport/faulty_transport.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace ferry::dataplane {

FaultyTransport::FaultyTransport(std::unique_ptr<Transport> inner)
    : inner_(std::move(inner)), delivery_thread_([this] { DeliveryLoop(); }) {}

FaultyTransport::~FaultyTransport() { Shutdown(); }

// ---- fault controls ---------------------------------------------------------------------------

void FaultyTransport::FailConnect(NodeId peer, bool fail) {
  absl::MutexLock lock(&mu_);
  if (fail) {
    connect_faults_.insert(peer);
  } else {
    connect_faults_.erase(peer);
  }
}

void FaultyTransport::FailPeerAfterBytes(NodeId peer, uint64_t bytes) {
  {
    absl::MutexLock lock(&mu_);
    if (bytes > 0) {
      budgets_[peer] = bytes;
      return;
    }
  }
  Trip(peer);
}

void FaultyTransport::SetCompletionDelay(std::chrono::microseconds delay) {
  delay_us_.store(delay.count());
}

absl::Status FaultyTransport::HealPeer(NodeId peer) {
  std::string address;
  bool was_tripped;
  {
    absl::MutexLock lock(&mu_);
    was_tripped = tripped_.erase(peer) > 0;
    connect_faults_.erase(peer);
    budgets_.erase(peer);
    auto it = addresses_.find(peer);
    if (it == addresses_.end() || !was_tripped) return absl::OkStatus();
    address = it->second;
  }
  return inner_->AddPeer(peer, address);
}

void FaultyTransport::ClearFaults() {
  std::vector<NodeId> peers;
  {
    absl::MutexLock lock(&mu_);
    peers.assign(tripped_.begin(), tripped_.end());
    peers.insert(peers.end(), connect_faults_.begin(), connect_faults_.end());
    budgets_.clear();
  }
  for (NodeId peer : peers) HealPeer(peer).IgnoreError();  // best effort, as documented
  delay_us_.store(0);
}

bool FaultyTransport::IsFailed(NodeId peer) const {
  absl::MutexLock lock(&mu_);
  return tripped_.contains(peer);
}

void FaultyTransport::Trip(NodeId peer) {
  PeerFailureHandler handler;
  {
    absl::MutexLock lock(&mu_);
    if (!tripped_.insert(peer).second) return;
    budgets_.erase(peer);
    ++epochs_[peer];
    handler = failure_handler_;
  }
  injected_peer_failures_.fetch_add(1);
  // The inner transport fails what it still has outstanding and stops talking to the peer.
  inner_->RemovePeer(peer);
  if (handler) {
    absl::Status why = absl::UnavailableError(
        absl::StrCat("faulty: node ", peer, " failed (injected fault)"));
    Schedule(std::chrono::microseconds(0),
             [handler = std::move(handler), peer, why] { handler(peer, why); });
  }
}

// ---- forwarding -------------------------------------------------------------------------------

absl::Status FaultyTransport::AddPeer(NodeId peer, std::string_view address) {
  {
    absl::MutexLock lock(&mu_);
    if (connect_faults_.contains(peer)) {
      injected_failures_.fetch_add(1);
      return absl::UnavailableError(
          absl::StrCat("faulty: connect to node ", peer, " refused (injected fault)"));
    }
    addresses_[peer] = std::string(address);
    if (tripped_.contains(peer)) return absl::OkStatus();  // stays dead until HealPeer
  }
  return inner_->AddPeer(peer, address);
}

void FaultyTransport::RemovePeer(NodeId peer) {
  {
    absl::MutexLock lock(&mu_);
    addresses_.erase(peer);
  }
  inner_->RemovePeer(peer);
}

bool FaultyTransport::HasPeer(NodeId peer) const {
  absl::MutexLock lock(&mu_);
  return addresses_.contains(peer);
}

void FaultyTransport::SetFetchHandler(FetchHandler handler) {
  inner_->SetFetchHandler([this, handler = std::move(handler)](
                              NodeId from, std::string_view header,
                              std::unique_ptr<FetchResponder> responder) {
    absl::MutexLock lock(&callback_mu_);
    if (handler) handler(from, header, std::move(responder));
  });
}

void FaultyTransport::SetControlHandler(ControlHandler handler) {
  inner_->SetControlHandler(
      [this, handler = std::move(handler)](NodeId from, std::string_view bytes) {
        absl::MutexLock lock(&callback_mu_);
        if (handler) handler(from, bytes);
      });
}

void FaultyTransport::SetPeerFailureHandler(PeerFailureHandler handler) {
  {
    absl::MutexLock lock(&mu_);
    failure_handler_ = handler;
  }
  inner_->SetPeerFailureHandler(
      [this, handler = std::move(handler)](NodeId peer, const absl::Status& why) {
        absl::MutexLock lock(&callback_mu_);
        if (handler) handler(peer, why);
      });
}

bool FaultyTransport::RejectIfFaulty(NodeId peer, std::string_view op, Done& done) {
  std::string why;
  {
    absl::MutexLock lock(&mu_);
    if (connect_faults_.contains(peer)) {
      why = absl::StrCat("faulty: ", std::string(op), " node ", peer,
                         ": connection refused (injected fault)");
    } else if (tripped_.contains(peer)) {
      why = absl::StrCat("faulty: ", std::string(op), " node ", peer,
                         ": peer failed (injected fault)");
    } else {
      return false;
    }
  }
  injected_failures_.fetch_add(1);
  outstanding_.fetch_add(1);
  Schedule(std::chrono::microseconds(delay_us_.load()), [this, done = std::move(done), why]() mutable {
    outstanding_.fetch_sub(1);
    done(absl::UnavailableError(why));
  });
  return true;
}

Done FaultyTransport::Wrap(NodeId peer, size_t counted_bytes, std::string_view op, Done done) {
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    epoch = epochs_[peer];
  }
  outstanding_.fetch_add(1);
  return [this, peer, counted_bytes, epoch, op = std::string(op),
          done = std::move(done)](absl::Status status) mutable {
    OnInnerDone(peer, counted_bytes, epoch, op, std::move(status), std::move(done));
  };
}

void FaultyTransport::OnInnerDone(NodeId peer, size_t counted_bytes, uint64_t epoch,
                                  const std::string& op, absl::Status status, Done done) {
  bool trip = false;
  {
    absl::MutexLock lock(&mu_);
    if (epochs_[peer] != epoch) {  // the peer "died" while this operation was outstanding
      if (status.ok()) injected_failures_.fetch_add(1);
      status = absl::UnavailableError(
          absl::StrCat("faulty: ", op, " node ", peer, ": peer failed (injected fault)"));
    } else if (status.ok() && counted_bytes > 0) {
      auto it = budgets_.find(peer);
      if (it != budgets_.end()) {
        it->second -= std::min<uint64_t>(it->second, counted_bytes);
        trip = it->second == 0;
      }
    }
  }
  if (trip) Trip(peer);
  int64_t delay = delay_us_.load();
  if (delay > 0) {
    Schedule(std::chrono::microseconds(delay),
             [this, done = std::move(done), status = std::move(status)]() mutable {
               outstanding_.fetch_sub(1);
               done(std::move(status));
             });
    return;
  }
  absl::MutexLock lock(&callback_mu_);
  outstanding_.fetch_sub(1);
  done(std::move(status));
}

FetchId FaultyTransport::Fetch(NodeId peer, std::string header, LocalSlice dst, Done done) {
  if (RejectIfFaulty(peer, "fetch from", done)) return 0;
  return inner_->Fetch(peer, std::move(header), dst, Wrap(peer, dst.length, "fetch from", std::move(done)));
}

void FaultyTransport::Read(NodeId peer, RemoteSlice src, LocalSlice dst, Done done) {
  if (RejectIfFaulty(peer, "read from", done)) return;
  inner_->Read(peer, std::move(src), dst, Wrap(peer, dst.length, "read from", std::move(done)));
}

void FaultyTransport::SendControl(NodeId peer, std::string bytes, Done done) {
  if (RejectIfFaulty(peer, "control message to", done)) return;
  inner_->SendControl(peer, std::move(bytes),
                      Wrap(peer, 0, "control message to", std::move(done)));
}

TransportStats FaultyTransport::Stats() const {
  TransportStats s = inner_->Stats();
  s.failures += injected_failures_.load();
  s.peer_failures += injected_peer_failures_.load();
  return s;
}

// ---- delivery thread --------------------------------------------------------------------------

void FaultyTransport::Schedule(std::chrono::microseconds delay, Task task) {
  absl::MutexLock lock(&delivery_mu_);
  if (delivery_flush_) return;  // after Shutdown no callback runs
  delivery_.emplace(Clock::now() + delay, std::move(task));
  delivery_cv_.Signal();
}

void FaultyTransport::DeliveryLoop() {
  absl::MutexLock lock(&delivery_mu_);
  while (true) {
    if (delivery_.empty()) {
      if (delivery_flush_) return;
      delivery_cv_.Wait(&delivery_mu_);
      continue;
    }
    auto first = delivery_.begin();
    const Clock::time_point now = Clock::now();
    if (!delivery_flush_ && first->first > now) {
      delivery_cv_.WaitWithTimeout(&delivery_mu_, absl::FromChrono(first->first - now));
      continue;
    }
    Task task = std::move(first->second);
    delivery_.erase(first);
    delivery_mu_.Unlock();
    {
      absl::MutexLock cb(&callback_mu_);
      std::move(task)();
    }
    delivery_mu_.Lock();
  }
}

void FaultyTransport::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    inner_->Shutdown();  // its CANCELLED completions may still be scheduled here
    {
      absl::MutexLock lock(&delivery_mu_);
      delivery_flush_ = true;
      delivery_cv_.Signal();
    }
    if (delivery_thread_.joinable()) delivery_thread_.join();
  });
}

}  // namespace ferry::dataplane
