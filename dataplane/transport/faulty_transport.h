// A Transport wrapper that injects faults into any inner Transport, for deterministic failure
// tests (STYLE.md rule 6). Without configured faults it forwards every call unchanged.
//
// Faults (configured at run time, thread-safe, effective for calls made afterwards):
// - FailConnect(peer): AddPeer(peer) returns UNAVAILABLE and new operations to the peer
//   complete with UNAVAILABLE (a connection that cannot be made). No failure handler runs.
// - FailPeerAfterBytes(peer, n): once n bytes (counted from this call) have been fetched or
//   read from the peer with OK completions, the peer "dies": the operation that crossed n
//   still completes OK; every operation to it outstanding at that moment completes with
//   UNAVAILABLE (their data may have landed, the status says it did not), later operations
//   fail at once with UNAVAILABLE, and the PeerFailureHandler runs once. The inner transport
//   forgets the peer (RemovePeer), so it also stops serving requests from it. n == 0 kills
//   the peer at once (FailPeerNow).
// - SetCompletionDelay(d): every completion of a Fetch/Read/SendControl is delivered d later,
//   a cancelled fetch's too (it models a receive whose teardown takes time: CancelFetch
//   reaches the inner transport at once, its CANCELLED is delivered d later).
// - HealPeer(peer) clears the faults of a peer and re-adds it to the inner transport with the
//   address it was last added with; ClearFaults() does so for all peers and resets the delay.
//
// - CancelFetch and ResetPeer are forwarded to the inner transport (an injected failure cannot
//   be cancelled: Fetch returns 0 for it).
//
// Threading: handlers and completions run on the inner transport's progress thread or on this
// wrapper's delivery thread (injected failures, delayed completions), never concurrently:
// both take one callback lock. So callbacks must not block and must not call Shutdown or
// RegisterMemory (which may wait for a thread that waits for the callback lock).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "dataplane/transport/transport.h"

namespace ferry::dataplane {

class FaultyTransport final : public Transport {
 public:
  // Takes ownership of `inner` (non-null) and starts the delivery thread.
  explicit FaultyTransport(std::unique_ptr<Transport> inner);
  ~FaultyTransport() override;  // Shutdown()

  // ---- fault controls (thread-safe) ----
  void FailConnect(NodeId peer, bool fail = true);
  void FailPeerAfterBytes(NodeId peer, uint64_t bytes);
  void FailPeerNow(NodeId peer) { FailPeerAfterBytes(peer, 0); }
  void SetCompletionDelay(std::chrono::microseconds delay);
  // Returns the inner AddPeer's status (OK if the peer was never added).
  [[nodiscard]] absl::Status HealPeer(NodeId peer);
  void ClearFaults();
  // True while `peer` is dead by injection.
  bool IsFailed(NodeId peer) const;
  // Operations this wrapper failed (not counting failures reported by the inner transport).
  uint64_t injected_failures() const { return injected_failures_.load(); }
  // Fetches, reads and control messages whose Done has not started to run yet (one dropped
  // by Shutdown stays counted).
  uint64_t outstanding() const { return outstanding_.load(); }
  Transport& inner() { return *inner_; }

  // ---- Transport ----
  std::string_view Name() const override { return "faulty"; }
  NodeId self() const override { return inner_->self(); }
  std::string LocalAddress() const override { return inner_->LocalAddress(); }
  [[nodiscard]] absl::Status AddPeer(NodeId peer, std::string_view address) override;
  void RemovePeer(NodeId peer) override;
  void ResetPeer(NodeId peer) override { inner_->ResetPeer(peer); }
  bool HasPeer(NodeId peer) const override;
  absl::StatusOr<MemoryRegion> RegisterMemory(MemoryKind kind, void* base, size_t length) override {
    return inner_->RegisterMemory(kind, base, length);
  }
  void SetFetchHandler(FetchHandler handler) override;
  void SetControlHandler(ControlHandler handler) override;
  void SetPeerFailureHandler(PeerFailureHandler handler) override;
  FetchId Fetch(NodeId peer, std::string header, LocalSlice dst, Done done) override;
  void CancelFetch(FetchId id) override { inner_->CancelFetch(id); }
  void Read(NodeId peer, RemoteSlice src, LocalSlice dst, Done done) override;
  void SendControl(NodeId peer, std::string bytes, Done done) override;
  TransportStats Stats() const override;
  // Shuts the inner transport down, then delivers every delayed completion at once.
  void Shutdown() override;

 private:
  using Clock = std::chrono::steady_clock;
  using Task = absl::AnyInvocable<void() &&>;

  // Rejects at once if the peer is unreachable by injection; returns false then.
  bool RejectIfFaulty(NodeId peer, std::string_view op, Done& done);
  // Wraps an inner completion: counts bytes, applies trips and the delay.
  Done Wrap(NodeId peer, size_t counted_bytes, std::string_view op, Done done);
  void OnInnerDone(NodeId peer, size_t counted_bytes, uint64_t epoch, const std::string& op,
                   absl::Status status, Done done);
  void Trip(NodeId peer);
  // Runs `task` under the callback lock on the delivery thread after `delay`.
  void Schedule(std::chrono::microseconds delay, Task task);
  void DeliveryLoop();

  const std::unique_ptr<Transport> inner_;
  std::atomic<uint64_t> injected_failures_{0};
  std::atomic<uint64_t> injected_peer_failures_{0};
  std::atomic<uint64_t> outstanding_{0};
  std::atomic<int64_t> delay_us_{0};

  mutable absl::Mutex mu_;
  absl::flat_hash_set<NodeId> connect_faults_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<NodeId, uint64_t> budgets_ ABSL_GUARDED_BY(mu_);  // bytes left
  absl::flat_hash_set<NodeId> tripped_ ABSL_GUARDED_BY(mu_);
  // Bumped at each trip: an operation started in an older epoch completes UNAVAILABLE.
  absl::flat_hash_map<NodeId, uint64_t> epochs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<NodeId, std::string> addresses_ ABSL_GUARDED_BY(mu_);
  PeerFailureHandler failure_handler_ ABSL_GUARDED_BY(mu_);

  // Serialises every user callback (inner thread vs delivery thread).
  absl::Mutex callback_mu_;

  // The delayed completions and the flush flag; delivery_cv_ wakes the delivery thread.
  // Never held while callback_mu_ is taken (the loop releases it first).
  absl::Mutex delivery_mu_;
  absl::CondVar delivery_cv_;
  std::multimap<Clock::time_point, Task> delivery_ ABSL_GUARDED_BY(delivery_mu_);
  bool delivery_flush_ ABSL_GUARDED_BY(delivery_mu_) = false;  // run all now, then exit
  std::once_flag shutdown_once_;
  std::thread delivery_thread_;  // last: started after the fields above exist
};

}  // namespace ferry::dataplane
