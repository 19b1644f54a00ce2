#include "perf/coord_load/fake_node.h"

#include <algorithm>
#include <utility>

#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/proto_buffer_writer.h>
#include <grpcpp/impl/codegen/proto_utils.h>

#include "absl/strings/str_cat.h"

namespace ferry::perf {
namespace {

uint64_t Mix(uint64_t x) {   // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

std::string HeartbeatNote(double since_ms) {
  if (since_ms < 0) return "no heartbeat sent yet";
  return absl::StrCat("its last heartbeat left ", static_cast<int64_t>(since_ms),
                      " ms before (a coordinator that reports 'no heartbeat' for longer was too busy to read it)");
}

}  // namespace

void SetFingerprint::Add(uint64_t id) {
  ++count;
  sum += Mix(id);
  xor_ ^= Mix(id ^ 0x5bd1e995ULL);
}

void SetFingerprint::Remove(uint64_t id) {
  --count;
  sum -= Mix(id);
  xor_ ^= Mix(id ^ 0x5bd1e995ULL);
}

absl::StatusOr<bool> MembershipView::Apply(const proto::Membership& m) {
  // Written from docs/protocol.md "Membership", apart from ferryd's code, so that the load
  // test checks the wire protocol rather than one implementation of it.
  const bool snapshot = m.full() || m.nodes_size() > 0;
  if (snapshot) {
    if (any_ && m.epoch() <= epoch_) return false;   // a coordinator before deltas may reorder full lists
    SetFingerprint fp;
    std::vector<uint64_t> ids;
    ids.reserve(m.nodes_size());
    for (const proto::NodeInfo& n : m.nodes()) {
      if (!n.alive()) continue;
      ids.push_back(n.node_id());
      fp.Add(n.node_id());
    }
    std::sort(ids.begin(), ids.end());
    any_ = true;
    epoch_ = m.epoch();
    const bool changed = !(fp == fp_);
    fp_ = fp;
    ids_ = std::move(ids);
    return changed;
  }
  const uint64_t first = m.first_epoch() != 0 ? m.first_epoch() : m.epoch();   // merged deltas cover a range
  if (!any_ || first != epoch_ + 1 || m.epoch() < first) {
    return absl::FailedPreconditionError(
        absl::StrCat("membership delta at epoch ", first,
                     any_ ? absl::StrCat(" after epoch ", epoch_) : std::string(" before any snapshot")));
  }
  epoch_ = m.epoch();
  for (uint64_t id : m.removed()) {
    auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
    if (it == ids_.end() || *it != id) {
      return absl::FailedPreconditionError(absl::StrCat("delta at epoch ", m.epoch(), " removes unknown node ", id));
    }
    ids_.erase(it);
    fp_.Remove(id);
  }
  for (const proto::NodeInfo& n : m.added()) {
    auto it = std::lower_bound(ids_.begin(), ids_.end(), n.node_id());
    if (it != ids_.end() && *it == n.node_id()) {
      return absl::FailedPreconditionError(
          absl::StrCat("delta at epoch ", m.epoch(), " adds node ", n.node_id(), ", already live"));
    }
    ids_.insert(it, n.node_id());
    fp_.Add(n.node_id());
  }
  return m.removed_size() + m.added_size() > 0;
}

void Tally::BeginChange(uint64_t change) {
  absl::MutexLock lock(&mu_);
  change_ = change;
  counts_.matched = 0;
}

bool Tally::WaitFor(const std::function<bool(const Counts&)>& pred, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (!pred(counts_)) {
    if (cv_.WaitWithDeadline(&mu_, deadline)) return pred(counts_);
  }
  return true;
}

Tally::Counts Tally::counts() {
  absl::MutexLock lock(&mu_);
  return counts_;
}

void Tally::Welcomed() {
  absl::MutexLock lock(&mu_);
  ++counts_.welcomed;
  cv_.SignalAll();
}

void Tally::Matched(uint64_t change, int delta) {
  absl::MutexLock lock(&mu_);
  if (change != change_) return;
  counts_.matched += delta;
  cv_.SignalAll();
}

void Tally::UnexpectedDone(std::string what) {
  absl::MutexLock lock(&mu_);
  ++counts_.unexpected_done;
  ++counts_.errors;
  if (errors_.size() < 20) errors_.push_back(std::move(what));
  cv_.SignalAll();
}

void Tally::Error(std::string what) {
  absl::MutexLock lock(&mu_);
  ++counts_.errors;
  if (errors_.size() < 20) errors_.push_back(std::move(what));
  cv_.SignalAll();
}

std::vector<std::string> Tally::errors() {
  absl::MutexLock lock(&mu_);
  return errors_;
}

FakeNode::FakeNode(NodeSpec spec, Tally* tally) : spec_(std::move(spec)), tally_(tally) {}

void FakeNode::Start(grpc::GenericStub* stub, const std::string& method) {
  proto::NodeMessage hello_msg;
  proto::Hello* hello = hello_msg.mutable_hello();
  proto::NodeInfo* info = hello->mutable_node();
  info->set_node_id(spec_.id);
  info->set_name(spec_.name);
  info->set_dp_address(spec_.dp_address);
  info->set_transport("ucx");
  constexpr uint64_t kArena = 1ULL << 30;
  info->set_arena_bytes(kArena);
  (*info->mutable_resources())["host_mem"] = static_cast<double>(kArena);
  hello->set_cluster_token(spec_.token);
  ctx_.set_wait_for_ready(true);
  stub->PrepareBidiStreamingCall(&ctx_, method, grpc::StubOptions(), this);
  {
    absl::MutexLock lock(&mu_);
    bool own = false;
    grpc::SerializationTraits<proto::NodeMessage>::Serialize(hello_msg, &write_buf_, &own);
    write_in_flight_ = true;
    hold_ = true;
    started_ = true;
  }
  AddHold();
  StartWrite(&write_buf_);   // not yet started: no reaction can run before StartCall
  StartRead(&read_buf_);
  StartCall();
}

void FakeNode::Heartbeat() {
  {
    absl::MutexLock lock(&mu_);
    if (!snap_.welcomed || closing_ || !hold_ || write_in_flight_) return;
    proto::NodeMessage msg;
    proto::Heartbeat* hb = msg.mutable_heartbeat();
    hb->set_seq(++seq_);
    hb->set_arena_used(4096 * seq_ % (1 << 20));
    bool own = false;
    grpc::SerializationTraits<proto::NodeMessage>::Serialize(msg, &write_buf_, &own);
    write_in_flight_ = true;
    // hold_ stays set while this write is in flight (OnWriteDone clears neither), so OnDone
    // cannot run before the write starts below; Close and a failed read defer RemoveHold to
    // OnWriteDone while write_in_flight_ is set.
  }
  // Outside mu_: a start that completes at once may run OnWriteDone on this thread.
  StartWrite(&write_buf_);
}

void FakeNode::OnWriteDone(bool ok) {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (ok && seq_ > 0) {
      ++snap_.heartbeats_acked;
      snap_.last_heartbeat_at = Clock::now();
      tally_->heartbeats_acked.fetch_add(1, std::memory_order_relaxed);
    }
    if (hold_ && (closing_ || read_ended_)) {   // a release waited for this write
      hold_ = false;
      release = true;
    }
  }
  if (release) RemoveHold();
}

void FakeNode::Close() {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    closing_ = true;
    if (!started_) {   // no call, so no OnDone will come
      snap_.done = true;
      return;
    }
    if (hold_ && !write_in_flight_) {
      hold_ = false;
      release = true;
    }
  }
  ctx_.TryCancel();
  if (release) RemoveHold();
}

void FakeNode::OnReadDone(bool ok) {
  const Clock::time_point at = Clock::now();
  if (!ok) {
    // The stream ended (the coordinator closed it, or we cancelled it). Let OnDone come.
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      read_ended_ = true;   // an end we did not ask for is reported in OnDone
      if (hold_ && !write_in_flight_) {   // else OnWriteDone releases once the write completes
        hold_ = false;
        release = true;
      }
    }
    if (release) RemoveHold();
    return;
  }
  const uint64_t len = read_buf_.Length();
  proto::CoordMessage msg;
  grpc::Status parsed = grpc::SerializationTraits<proto::CoordMessage>::Deserialize(&read_buf_, &msg);
  tally_->messages.fetch_add(1, std::memory_order_relaxed);
  tally_->bytes.fetch_add(len, std::memory_order_relaxed);
  {
    absl::MutexLock lock(&mu_);
    ++snap_.messages;
    snap_.bytes += len;
    if (!parsed.ok()) {
      tally_->Error(absl::StrCat("node ", spec_.name, ": cannot parse a CoordMessage of ", len,
                                 " bytes: ", parsed.error_message()));
    } else {
      Handle(msg, at);
    }
  }
  StartRead(&read_buf_);
}

void FakeNode::Handle(const proto::CoordMessage& msg, Clock::time_point at) {
  switch (msg.msg_case()) {
    case proto::CoordMessage::kWelcome:
      if (snap_.welcomed) {
        tally_->Error(absl::StrCat("node ", spec_.name, ": a second Welcome in one session"));
        return;
      }
      snap_.welcomed = true;
      snap_.welcome_id = msg.welcome().node_id();
      snap_.heartbeat_interval_ms = msg.welcome().heartbeat_interval_ms();
      if (snap_.welcome_id != spec_.id) {
        tally_->Error(absl::StrCat("node ", spec_.name, ": Welcome names node ", snap_.welcome_id, ", expected ",
                                   spec_.id));
      }
      tally_->Welcomed();
      return;
    case proto::CoordMessage::kMembership:
      tally_->membership_messages.fetch_add(1, std::memory_order_relaxed);
      if (absl::StatusOr<bool> changed = view_.Apply(msg.membership()); !changed.ok()) {
        tally_->Error(absl::StrCat("node ", spec_.name, ": ", changed.status().message()));
      } else if (*changed) {
        view_changed_at_ = at;
        UpdateMatchLocked();
      }
      snap_.epoch = view_.epoch();
      return;
    default:
      return;   // instructions: counted, not acted on
  }
}

void FakeNode::UpdateMatchLocked() {
  const bool m = has_target_ && view_.fingerprint() == target_;
  if (m == snap_.matched) return;
  snap_.matched = m;
  if (m) snap_.matched_at = view_changed_at_;
  tally_->Matched(change_, m ? 1 : -1);
}

void FakeNode::SetTarget(uint64_t change, const SetFingerprint& target) {
  absl::MutexLock lock(&mu_);
  change_ = change;
  target_ = target;
  has_target_ = true;
  snap_.matched = false;   // the tally counts from zero for a new change
  UpdateMatchLocked();
}

FakeNode::Snapshot FakeNode::GetSnapshot(bool with_view) {
  absl::MutexLock lock(&mu_);
  Snapshot s = snap_;
  if (with_view) s.view = view_.ids();
  return s;
}

bool FakeNode::WaitDone(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(&snap_.done), deadline);
}

void FakeNode::OnDone(const grpc::Status& s) {
  std::string why;
  {
    absl::MutexLock lock(&mu_);
    if (!closing_) {
      double since_hb_ms = -1;
      if (snap_.heartbeats_acked > 0) {
        since_hb_ms = std::chrono::duration<double, std::milli>(Clock::now() - snap_.last_heartbeat_at).count();
      }
      why = absl::StrCat("node ", spec_.name, " (", spec_.id, "): session ended unexpectedly: ", s.error_message(),
                         " (code ", s.error_code(), "); ", HeartbeatNote(since_hb_ms));
    }
  }
  if (!why.empty()) tally_->UnexpectedDone(std::move(why));
  // Last: once `done` is set, WaitDone returns and the harness may destroy this node.
  absl::MutexLock lock(&mu_);
  snap_.status = s.ok() ? "OK" : absl::StrCat(s.error_code(), ": ", s.error_message());
  snap_.done = true;
}

}  // namespace ferry::perf
