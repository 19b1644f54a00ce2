// Model-based stress test of PlacementManager: random operations (nodes joining and dying,
// SetResource, Acquire with random bundles / constraints / alternatives / priorities, Release,
// Renew, Cancel, time passing, coordinator restarts with lease rebuild), fixed seeds and a
// bounded number of steps. After every step it checks:
//  * no node is allocated past capacity, and every allocation is exactly the sum of the live
//    leases on it (no leaked or lost amounts);
//  * the model's live leases and waiting requests are exactly the manager's (every grant, loss
//    and failure was reported once);
//  * every lease honours its alternative (bundles, amounts, constraint);
//  * the free index matches the table;
//  * the head of the queue cannot be granted now (it would have been);
//  * every "can never be granted" answer is true on the capacities.
#include <cstdio>
#include <map>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "control/placement/placement_manager.h"

namespace ferry::control::placement {
namespace {

const std::vector<std::string> kNames = {"gpu", "mem", "e1", "e2"};
const std::vector<std::string> kHolders = {"h0", "h1", "h2"};

class StressRun {
 public:
  explicit StressRun(uint32_t seed) : rng_(seed), m_(std::make_unique<PlacementManager>()) {}

  void Step() {
    const int op = Uniform(0, 99);
    if (op < 10) AddNode();
    else if (op < 14) RemoveNode();
    else if (op < 22) SetResource();
    else if (op < 55) Acquire();
    else if (op < 75) Release();
    else if (op < 80) Renew();
    else if (op < 84) Cancel();
    else if (op < 98) Advance();
    else Restart();
  }

  // How often each outcome happened: the run must have exercised all of them.
  struct Counts {
    int granted_now = 0, queued = 0, granted_later = 0, refused = 0, never = 0, expired_requests = 0,
        lost = 0, restarts = 0, gangs = 0;
  };
  const Counts& counts() const { return counts_; }

  void Check() {
    ASSERT_TRUE(m_->internal_error().ok()) << m_->internal_error();
    CheckAllocations();
    CheckBooks();
    CheckIndex();
    CheckHead();
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  template <typename T>
  const T& Pick(const std::vector<T>& v) { return v[Uniform(0, static_cast<int>(v.size()) - 1)]; }

  void Apply(const PlacementEvents& ev) {
    for (const Grant& g : ev.granted) {
      ASSERT_EQ(waiting_.count(g.request), 1u) << "grant for a request that was not waiting";
      leases_[g.lease.id] = waiting_[g.request];
      ++counts_.granted_later;
      waiting_.erase(g.request);
      ASSERT_EQ(g.lease.holder, leases_[g.lease.id].holder);
    }
    for (const RequestFailure& f : ev.failed) {
      ASSERT_EQ(waiting_.count(f.request), 1u) << "failure for a request that was not waiting";
      ASSERT_TRUE(f.status.code() == absl::StatusCode::kDeadlineExceeded ||
                  f.status.code() == absl::StatusCode::kFailedPrecondition)
          << f.status;
      waiting_.erase(f.request);
      ++(f.status.code() == absl::StatusCode::kDeadlineExceeded ? counts_.expired_requests : counts_.never);
    }
    for (const LostLease& l : ev.lost) {
      ASSERT_EQ(leases_.count(l.lease), 1u) << "lost lease " << l.lease << " was not live";
      ASSERT_EQ(leases_[l.lease].holder, l.holder);
      leases_.erase(l.lease);
      ++counts_.lost;
    }
  }

  void AddNode() {
    const NodeId node = Uniform(1, 10);
    ResourceMap res;
    for (const std::string& n : kNames) {
      if (Uniform(0, 2) > 0) res[n] = Uniform(0, 8);
    }
    auto ev = m_->AddNode(node, {{"rack", absl::StrCat("r", Uniform(0, 2))}}, res, now_);
    if (ev.ok()) Apply(*ev);
    else ASSERT_EQ(ev.status().code(), absl::StatusCode::kAlreadyExists) << ev.status();
  }

  void RemoveNode() {
    auto ev = m_->RemoveNode(Uniform(1, 10), now_);
    if (ev.ok()) Apply(*ev);
    else ASSERT_EQ(ev.status().code(), absl::StatusCode::kNotFound) << ev.status();
  }

  NodeSelector RandomSelector() {
    switch (Uniform(0, 2)) {
      case 0: return NodeSelector::Node(Uniform(1, 10));
      case 1: return NodeSelector::WithLabels({{"rack", absl::StrCat("r", Uniform(0, 2))}});
      default: return NodeSelector::CoverFree({{Pick(kNames), Uniform(1, 3)}}, Uniform(1, 3));
    }
  }

  void SetResource() {
    auto ev = m_->SetResource(Pick(kNames), Uniform(0, 8), RandomSelector(), now_);
    if (ev.ok()) return Apply(*ev);
    const absl::StatusCode c = ev.status().code();
    ASSERT_TRUE(c == absl::StatusCode::kNotFound || c == absl::StatusCode::kFailedPrecondition) << ev.status();
  }

  PlacementAlternative RandomAlternative() {
    PlacementAlternative alt;
    const int bundles = Uniform(1, 4);
    for (int b = 0; b < bundles; ++b) {
      ResourceMap m;
      m[Pick(kNames)] = Uniform(1, 4);
      if (Uniform(0, 2) == 0) m[Pick(kNames)] = Uniform(1, 3);
      alt.bundles.push_back(m);
    }
    alt.constraint = static_cast<Constraint>(Uniform(0, 3));
    if (alt.constraint == Constraint::kSameLabelValue) alt.label_key = "rack";
    return alt;
  }

  void Acquire() {
    PlacementRequest r;
    r.holder = Pick(kHolders);
    const int alts = Uniform(1, 2);
    for (int i = 0; i < alts; ++i) r.alternatives.push_back(RandomAlternative());
    r.priority = Uniform(0, 2);
    r.deadline = now_ + absl::Seconds(Uniform(1, 20));
    r.lease_ttl = absl::Seconds(Uniform(5, 30));
    r.scoring = Uniform(0, 1) ? Scoring::kPack : Scoring::kSpread;
    auto res = m_->Acquire(r, now_);
    if (!res.ok()) return CheckRefusal(r, res.status());
    if (res->lease) {
      leases_[res->lease->id] = r;
      ++counts_.granted_now;
      counts_.gangs += res->lease->bundles.size() > 1;
    } else {
      waiting_[res->queued] = r;
      ++counts_.queued;
    }
  }

  // A refusal must be a bad-input code; "never" must be true on capacities.
  void CheckRefusal(const PlacementRequest& r, const absl::Status& s) {
    const absl::StatusCode c = s.code();
    ASSERT_TRUE(c == absl::StatusCode::kNotFound || c == absl::StatusCode::kFailedPrecondition) << s;
    ++counts_.refused;
    if (c != absl::StatusCode::kFailedPrecondition) return;
    ++counts_.never;
    ResourceTable copy = m_->table();
    auto resolved = ResolveRequest(r, copy, false);
    ASSERT_TRUE(resolved.ok()) << resolved.status();
    for (const ResolvedAlternative& alt : resolved->alternatives) {
      ASSERT_FALSE(Matcher(copy, r.scoring).Match(alt, Basis::kCapacity).found) << "said never, but fits: " << s;
    }
  }

  template <typename M>
  bool PickKey(const M& map, typename M::key_type* key) {
    if (map.empty()) return false;
    auto it = map.begin();
    std::advance(it, Uniform(0, static_cast<int>(map.size()) - 1));
    *key = it->first;
    return true;
  }

  void Release() {
    LeaseId id;
    if (!PickKey(leases_, &id)) return;
    const std::string holder = leases_[id].holder;
    if (Uniform(0, 9) == 0) {
      ASSERT_EQ(m_->Release(id, holder + "x", now_).status().code(), absl::StatusCode::kPermissionDenied);
      return;
    }
    auto ev = m_->Release(id, holder, now_);
    ASSERT_TRUE(ev.ok()) << ev.status();
    leases_.erase(id);
    Apply(*ev);
  }

  void Renew() {
    LeaseId id;
    if (!PickKey(leases_, &id)) return;
    ASSERT_TRUE(m_->Renew(id, leases_[id].holder, now_).ok());
  }

  void Cancel() {
    RequestId id;
    if (!PickKey(waiting_, &id)) return;
    auto ev = m_->Cancel(id, waiting_[id].holder, now_);
    ASSERT_TRUE(ev.ok()) << ev.status();
    waiting_.erase(id);
    Apply(*ev);
  }

  void Advance() {
    now_ += absl::Seconds(Uniform(0, 3));
    Apply(m_->Advance(now_));
  }

  // A coordinator restart: a fresh manager, nodes re-register with what they had, holders
  // re-report their leases (one also sends a duplicate, which must be refused). Waiting
  // requests die with the old coordinator (clients retry).
  void Restart() {
    auto fresh = std::make_unique<PlacementManager>();
    ASSERT_TRUE(fresh->BeginRebuild(now_ + absl::Seconds(5), now_).ok());
    for (const NodeResourcesView& n : m_->ClusterResources()) {
      ResourceMap res;
      for (const auto& [name, a] : n.resources) res[name] = a.capacity;
      ASSERT_TRUE(fresh->AddNode(n.node, n.labels, res, now_).ok());
    }
    for (const auto& [id, lease] : m_->leases().leases()) {
      LeaseReport report{id, lease.holder, lease.alternative, {}, lease.ttl};
      for (const LeaseBundle& b : lease.bundles) {
        ResourceMap amounts;
        for (const Demand& d : b.demands) amounts[m_->table().Name(d.resource)] += d.amount;
        report.bundles.push_back({b.node, amounts});
      }
      ASSERT_TRUE(fresh->Restore(report, now_).ok());
      ASSERT_FALSE(fresh->Restore(report, now_).ok()) << "a duplicate report was accepted";
    }
    RefuseOverAllocation(*fresh);
    m_ = std::move(fresh);
    waiting_.clear();
    ++counts_.restarts;
  }

  // A report for one unit more than a node has free conflicts with what was restored: refused,
  // and nothing changes (the next Check compares every allocation with the leases).
  void RefuseOverAllocation(PlacementManager& fresh) {
    const std::vector<NodeResourcesView> nodes = fresh.ClusterResources();
    if (nodes.empty()) return;
    const NodeResourcesView& n = nodes[Uniform(0, static_cast<int>(nodes.size()) - 1)];
    if (n.resources.empty()) return;
    auto it = n.resources.begin();
    std::advance(it, Uniform(0, static_cast<int>(n.resources.size()) - 1));
    LeaseReport bogus{1'000'000 + static_cast<LeaseId>(Uniform(0, 1000)), "intruder", 0,
                      {{n.node, {{it->first, it->second.available + 1}}}}, absl::Seconds(10)};
    ASSERT_EQ(fresh.Restore(bogus, now_).code(), absl::StatusCode::kAborted);
  }

  void CheckAllocations() {
    const ResourceTable& t = m_->table();
    std::map<std::pair<NodeId, ResourceId>, int64_t> held;
    for (const auto& [id, lease] : m_->leases().leases()) {
      for (const LeaseBundle& b : lease.bundles) {
        ASSERT_TRUE(t.HasNode(b.node)) << "lease " << id << " on a dead node";
        for (const Demand& d : b.demands) held[{b.node, d.resource}] += d.amount;
      }
    }
    for (NodeId node : t.NodeIds()) {
      for (ResourceId r = 0; r < t.resource_count(); ++r) {
        ASSERT_GE(t.Allocated(node, r), 0);
        ASSERT_LE(t.Allocated(node, r), t.Capacity(node, r)) << "over-allocated node " << node << " " << t.Name(r);
        ASSERT_EQ(t.Allocated(node, r), (held[{node, r}])) << "leaked or lost amount on node " << node;
      }
    }
  }

  void CheckBooks() {
    ASSERT_EQ(m_->leases().size(), leases_.size());
    for (const auto& [id, req] : leases_) {
      const Lease* l = m_->leases().Find(id);
      ASSERT_NE(l, nullptr) << "lease " << id << " lost without an event";
      ASSERT_EQ(l->holder, req.holder);
      CheckLeaseShape(*l, req);
    }
    ASSERT_EQ(m_->queue().size(), waiting_.size());
    for (RequestId id : m_->queue().InOrder()) ASSERT_EQ(waiting_.count(id), 1u);
  }

  void CheckLeaseShape(const Lease& l, const PlacementRequest& req) {
    ASSERT_LT(l.alternative, req.alternatives.size());
    const PlacementAlternative& alt = req.alternatives[l.alternative];
    ASSERT_EQ(l.bundles.size(), alt.bundles.size());
    std::set<NodeId> nodes;
    std::set<std::string> racks;
    for (size_t b = 0; b < l.bundles.size(); ++b) {
      ResourceMap got;
      for (const Demand& d : l.bundles[b].demands) got[m_->table().Name(d.resource)] = d.amount;
      ASSERT_EQ(got, alt.bundles[b]);
      nodes.insert(l.bundles[b].node);
      racks.insert(*m_->table().Label(l.bundles[b].node, "rack"));
    }
    if (alt.constraint == Constraint::kSameNode) {
      ASSERT_EQ(nodes.size(), 1u);
    } else if (alt.constraint == Constraint::kDifferentNodes) {
      ASSERT_EQ(nodes.size(), l.bundles.size());
    } else if (alt.constraint == Constraint::kSameLabelValue) {
      ASSERT_EQ(racks.size(), 1u);
    }
  }

  void CheckIndex() {
    const ResourceTable& t = m_->table();
    for (ResourceId r = 0; r < t.resource_count(); ++r) {
      size_t holders = 0;
      int64_t total = 0;
      for (NodeId node : t.NodeIds()) {
        if (t.Capacity(node, r) == 0) continue;
        ++holders;
        total += t.Capacity(node, r);
        ASSERT_TRUE(t.Holders(r).contains({t.Free(node, r), node})) << "index misses node " << node;
      }
      ASSERT_EQ(t.Holders(r).size(), holders);
      ASSERT_EQ(t.TotalCapacity(r), total);
    }
  }

  // The head of the queue was tried after the last change that could help it: it must not fit.
  void CheckHead() {
    if (m_->rebuilding() || m_->queue().empty()) return;
    const RequestId head = m_->queue().InOrder()[0];
    const PlacementRequest& req = waiting_[head];
    ResourceTable copy = m_->table();
    auto resolved = ResolveRequest(req, copy, true);
    ASSERT_TRUE(resolved.ok());
    for (const ResolvedAlternative& alt : resolved->alternatives) {
      ASSERT_FALSE(Matcher(copy, req.scoring).Match(alt, Basis::kFree).found) << "head " << head << " fits now";
    }
  }

  std::mt19937 rng_;
  std::unique_ptr<PlacementManager> m_;
  absl::Time now_ = absl::FromUnixSeconds(50000);
  std::map<LeaseId, PlacementRequest> leases_;     // live leases -> the request granted
  std::map<RequestId, PlacementRequest> waiting_;  // waiting requests
  Counts counts_;
};

class PlacementStressTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(PlacementStressTest, InvariantsHoldAfterEveryStep) {
  StressRun run(GetParam());
  for (int step = 0; step < 20000; ++step) {
    run.Step();
    ASSERT_FALSE(HasFatalFailure()) << "step " << step;
    run.Check();
    ASSERT_FALSE(HasFatalFailure()) << "step " << step;
  }
  const StressRun::Counts& c = run.counts();
  std::printf("granted now %d, queued %d, granted later %d, refused %d (never %d), expired requests %d, "
              "lost leases %d, restarts %d, gangs %d\n",
              c.granted_now, c.queued, c.granted_later, c.refused, c.never, c.expired_requests, c.lost, c.restarts,
              c.gangs);
  EXPECT_GT(c.granted_now, 100);
  EXPECT_GT(c.gangs, 20);
  EXPECT_GT(c.queued, 20);
  EXPECT_GT(c.granted_later, 10);
  EXPECT_GT(c.never, 10);
  EXPECT_GT(c.expired_requests, 5);
  EXPECT_GT(c.lost, 10);
  EXPECT_GT(c.restarts, 10);
}

INSTANTIATE_TEST_SUITE_P(Seeds, PlacementStressTest, ::testing::Values(1u, 7u, 42u, 2026u));

}  // namespace
}  // namespace ferry::control::placement
