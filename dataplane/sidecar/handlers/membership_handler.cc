#include "dataplane/sidecar/handlers/membership_handler.h"

#include <utility>
#include <vector>

#include "proto/membership_delta.h"
#include "spdlog/spdlog.h"

namespace ferry::dataplane {

MembershipHandler::MembershipHandler(uint64_t self, Transport* transport, Clock now)
    : self_(self), transport_(transport), now_(std::move(now)) {}

void MembershipHandler::OnSessionStart() {
  absl::MutexLock lock(&mu_);
  epoch_ = 0;
}

void MembershipHandler::OnWelcome(const proto::Welcome& w) {
  std::vector<uint64_t> reset;
  {
    absl::MutexLock lock(&mu_);
    if (w.was_declared_dead()) {
      // Everyone dropped us and closed their connections to us: ours to them are stale.
      for (const auto& [id, addr] : peers_) reset.push_back(id);
      for (const auto& [id, addr] : unconfirmed_peers_) reset.push_back(id);
      removal_grace_until_ = absl::InfinitePast();
    } else {
      removal_grace_until_ = now_() + absl::Milliseconds(w.liveness_timeout_ms());
    }
  }
  if (!reset.empty()) {
    spdlog::warn("the coordinator had declared this node dead: resetting {} peer connection(s)", reset.size());
  }
  for (uint64_t id : reset) transport_->ResetPeer(id);
}

absl::Status MembershipHandler::OnMembership(const proto::Membership& m) {
  std::vector<uint64_t> gone;
  std::vector<std::pair<uint64_t, std::string>> added;
  {
    absl::MutexLock lock(&mu_);
    std::map<uint64_t, std::string> now = peers_;
    if (absl::Status s = proto::ApplyMembership(m, self_, &epoch_, &now); !s.ok()) return s;
    const bool grace = now_() < removal_grace_until_;
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
    if (absl::Status s = transport_->AddPeer(id, addr); !s.ok()) {
      spdlog::warn("adding peer {}: {}", id, std::string(s.message()));
    }
  }
  return absl::OkStatus();
}

void MembershipHandler::ExpireUnconfirmedPeers() {
  std::vector<uint64_t> gone;
  {
    absl::MutexLock lock(&mu_);
    if (unconfirmed_peers_.empty() || now_() < removal_grace_until_) return;
    for (const auto& [id, addr] : unconfirmed_peers_) gone.push_back(id);
    unconfirmed_peers_.clear();
  }
  for (uint64_t id : gone) transport_->RemovePeer(id);
}

std::map<uint64_t, std::string> MembershipHandler::peers() const {
  absl::MutexLock lock(&mu_);
  return peers_;
}

std::map<uint64_t, std::string> MembershipHandler::unconfirmed_peers() const {
  absl::MutexLock lock(&mu_);
  return unconfirmed_peers_;
}

}  // namespace ferry::dataplane
