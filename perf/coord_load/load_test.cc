#include "perf/coord_load/load_test.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/coordinator.grpc.pb.h"

namespace ferry::perf {
namespace {

uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
}

uint64_t SelfThreads() {
  absl::StatusOr<ProcSample> s = SampleProc(getpid());
  return s.ok() ? s->threads : 0;
}

}  // namespace

LoadRun::LoadRun(LoadOptions options, std::string address, pid_t coord_pid, std::function<absl::Status()> health)
    : options_(std::move(options)),
      address_(std::move(address)),
      coord_pid_(coord_pid),
      health_(std::move(health)),
      method_(absl::StrCat("/", proto::Coordinator::service_full_name(), "/Session")),
      rng_(options_.seed) {
  // Room for the joins the changes add.
  const uint64_t max_nodes = options_.nodes + options_.changes;
  const uint32_t n_channels = static_cast<uint32_t>((max_nodes + options_.nodes_per_channel - 1) / options_.nodes_per_channel);
  for (uint32_t i = 0; i < n_channels; ++i) {
    grpc::ChannelArguments args;
    // A distinct argument and a local subchannel pool: each channel gets its own connection.
    args.SetInt("ferry.coord_load.channel", static_cast<int>(i));
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetMaxReceiveMessageSize(-1);
    channels_.push_back(grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args));
    stubs_.push_back(std::make_unique<grpc::GenericStub>(channels_.back()));
    channel_load_.push_back(0);
  }
  ticker_ = std::thread([this] { TickerLoop(); });
}

LoadRun::~LoadRun() { Teardown(); }

void LoadRun::Fail(std::string what) { tally_.Error(std::move(what)); }

double LoadRun::CoordCpu() {
  if (coord_pid_ == 0) return 0;
  absl::StatusOr<ProcSample> s = SampleProc(coord_pid_);
  return s.ok() ? s->cpu_s : 0;
}

std::vector<FakeNode*> LoadRun::Live() {
  absl::MutexLock lock(&mu_);
  return live_;
}

bool LoadRun::Wait(const std::function<bool(const Tally::Counts&)>& pred, absl::Time deadline) {
  while (true) {
    absl::Time slice = std::min(deadline, absl::Now() + absl::Milliseconds(200));
    if (tally_.WaitFor(pred, slice)) return true;
    if (absl::Status s = health_(); !s.ok()) {
      Fail(absl::StrCat("coordinator: ", s.message()));
      health_failed_ = true;
      return false;
    }
    if (absl::Now() >= deadline) return false;
  }
}

FakeNode* LoadRun::AddNode() {
  const uint64_t index = next_index_++;
  NodeSpec spec;
  spec.id = (SplitMix(&rng_) >> 1) | 1;   // non-zero 63-bit, like ferryd's
  spec.name = absl::StrCat("load-", options_.seed, "-", index);
  spec.token = options_.token;
  // docs/protocol.md 5.1: "FUX1", the node id, then the UCP worker address (fake bytes here).
  spec.dp_address = "FUX1";
  spec.dp_address.append(reinterpret_cast<const char*>(&spec.id), sizeof(spec.id));
  while (spec.dp_address.size() < std::max<uint32_t>(options_.dp_address_bytes, 13)) {
    spec.dp_address.push_back(static_cast<char>(SplitMix(&rng_)));
  }
  auto node = std::make_unique<FakeNode>(std::move(spec), &tally_);
  FakeNode* raw = node.get();
  absl::MutexLock lock(&mu_);
  nodes_.push_back(std::move(node));
  return raw;
}

void LoadRun::StartNode(FakeNode* node) {
  auto least = std::min_element(channel_load_.begin(), channel_load_.end());
  ++*least;
  node->Start(stubs_[least - channel_load_.begin()].get(), method_);
  absl::MutexLock lock(&mu_);
  live_.push_back(node);
}

void LoadRun::SetTargets(const std::vector<FakeNode*>& nodes) {
  tally_.BeginChange(++change_);
  for (FakeNode* n : nodes) n->SetTarget(change_, expected_);
}

void LoadRun::ReportUnmatched(const std::string& phase, const std::vector<FakeNode*>& nodes) {
  std::vector<uint64_t> want;
  {
    absl::MutexLock lock(&mu_);
    for (FakeNode* n : live_) want.push_back(n->spec().id);
  }
  std::sort(want.begin(), want.end());
  int reported = 0, unmatched = 0;
  for (FakeNode* n : nodes) {
    FakeNode::Snapshot s = n->GetSnapshot(/*with_view=*/true);
    if (s.matched) continue;
    ++unmatched;
    if (reported++ >= 5) continue;
    std::vector<uint64_t> missing, extra;
    std::set_difference(want.begin(), want.end(), s.view.begin(), s.view.end(), std::back_inserter(missing));
    std::set_difference(s.view.begin(), s.view.end(), want.begin(), want.end(), std::back_inserter(extra));
    missing.resize(std::min<size_t>(missing.size(), 4));
    extra.resize(std::min<size_t>(extra.size(), 4));
    Fail(absl::StrCat(phase, ": node ", n->spec().name, " (", n->spec().id, ") has membership epoch ", s.epoch, " with ",
                      s.view.size(), " nodes, expected ", want.size(), (s.welcomed ? "" : "; no Welcome"),
                      "; missing e.g. [", absl::StrJoin(missing, ","), "], extra e.g. [", absl::StrJoin(extra, ","),
                      "]", s.done ? absl::StrCat("; session ended: ", s.status) : ""));
  }
  if (unmatched > 0) Fail(absl::StrCat(phase, ": ", unmatched, " of ", nodes.size(), " nodes lack the expected membership"));
}

bool LoadRun::Register(LoadResult* r) {
  const auto t0 = Clock::now();
  const double cpu0 = CoordCpu();
  const absl::Time deadline = absl::Now() + options_.register_timeout;
  const uint64_t window = std::max<uint32_t>(options_.register_window, 1);
  for (uint64_t started = 0; started < options_.nodes;) {
    std::vector<FakeNode*> wave;
    for (; started < options_.nodes && wave.size() < window; ++started) wave.push_back(AddNode());
    for (FakeNode* n : wave) expected_.Add(n->spec().id);
    std::vector<FakeNode*> targets = Live();
    targets.insert(targets.end(), wave.begin(), wave.end());
    SetTargets(targets);
    for (FakeNode* n : wave) StartNode(n);
    const uint64_t want = started;
    const bool welcomed = Wait([want](const Tally::Counts& c) { return c.welcomed >= want || c.unexpected_done > 0; },
                               deadline);
    r->welcome_s = Seconds(Clock::now() - t0);
    r->welcomed = tally_.counts().welcomed;
    if (heartbeat_ms_.load() == 0 && welcomed) heartbeat_ms_ = wave.front()->GetSnapshot().heartbeat_interval_ms;
    const bool converged =
        welcomed && Wait([want](const Tally::Counts& c) { return c.matched >= want || c.unexpected_done > 0; }, deadline);
    r->converge_s = Seconds(Clock::now() - t0);
    if (!converged || tally_.counts().unexpected_done > 0) {
      const Tally::Counts k = tally_.counts();
      Fail(absl::StrCat("registration: ", r->welcomed, " of ", want, " nodes welcomed, ", k.matched,
                        " with the full membership, ", k.unexpected_done, " sessions ended, after ", r->converge_s,
                        " s (timeout ", absl::FormatDuration(options_.register_timeout), ")"));
      if (!health_failed_) ReportUnmatched("registration", targets);
      r->register_bytes = tally_.bytes.load();
      r->register_messages = tally_.messages.load();
      return false;
    }
  }
  r->registered = true;
  r->register_bytes = tally_.bytes.load();
  r->register_messages = tally_.messages.load();
  r->register_coord_cpu_s = CoordCpu() - cpu0;
  for (FakeNode* n : Live()) {
    FakeNode::Snapshot s = n->GetSnapshot();
    if (!s.welcomed || s.welcome_id != n->spec().id) {
      Fail(absl::StrCat("registration: node ", n->spec().name, " has no Welcome with its id ", n->spec().id));
    }
  }
  if (coord_pid_ != 0) {
    if (absl::StatusOr<ProcSample> s = SampleProc(coord_pid_); s.ok()) r->coord_after_register = *s;
  }
  r->client_threads = SelfThreads();
  return true;
}

void LoadRun::Steady(LoadResult* r) {
  const uint64_t hb0 = tally_.heartbeats_acked.load(), mm0 = tally_.membership_messages.load();
  const double cpu0 = CoordCpu(), self0 = SelfCpuSeconds();
  const auto t0 = Clock::now();
  const absl::Time end = absl::Now() + options_.steady;
  // Measuring, not synchronising: the window is a fixed length of time. Wait() returns at
  // `end` unless a node's session ends or the coordinator fails.
  Wait([](const Tally::Counts& c) { return c.unexpected_done > 0; }, end);
  r->steady_s = Seconds(Clock::now() - t0);
  r->steady_coord_cpu_s = CoordCpu() - cpu0;
  r->steady_client_cpu_s = SelfCpuSeconds() - self0;
  r->steady_heartbeats = tally_.heartbeats_acked.load() - hb0;
  r->steady_membership_messages = tally_.membership_messages.load() - mm0;
  const std::vector<FakeNode*> live = Live();
  if (tally_.counts().matched != live.size()) ReportUnmatched("steady window", live);
}

ChangeResult LoadRun::Change(bool leave) {
  ChangeResult c;
  c.kind = leave ? "leave" : "join";
  std::vector<FakeNode*> live = Live();
  FakeNode* subject = nullptr;
  if (leave) {
    const size_t victim = SplitMix(&rng_) % live.size();
    subject = live[victim];
    live.erase(live.begin() + static_cast<std::ptrdiff_t>(victim));
    expected_.Remove(subject->spec().id);
    {
      absl::MutexLock lock(&mu_);
      live_ = live;   // the ticker stops heartbeating it; Close stops it anyway
    }
  } else {
    subject = AddNode();
    expected_.Add(subject->spec().id);
    live.push_back(subject);
  }
  SetTargets(live);
  const uint64_t bytes0 = tally_.bytes.load(), msgs0 = tally_.messages.load();
  const double cpu0 = CoordCpu();
  const auto t0 = Clock::now();
  if (leave) {
    subject->Close();
  } else {
    StartNode(subject);
  }
  const uint64_t want = live.size();
  c.live_after = want;
  c.ok = Wait([want](const Tally::Counts& k) { return k.matched >= want || k.unexpected_done > 0; },
              absl::Now() + options_.change_timeout) &&
         tally_.counts().unexpected_done == 0;
  c.coord_cpu_s = CoordCpu() - cpu0;
  c.bytes = tally_.bytes.load() - bytes0;
  c.messages = tally_.messages.load() - msgs0;
  std::vector<double> ms;
  ms.reserve(live.size());
  for (FakeNode* n : live) {
    FakeNode::Snapshot s = n->GetSnapshot();
    if (s.matched) ms.push_back(std::max(0.0, Seconds(s.matched_at - t0) * 1e3));
  }
  c.p50_ms = Percentile(ms, 0.5);
  c.max_ms = ms.empty() ? 0 : *std::max_element(ms.begin(), ms.end());
  if (!c.ok) {
    Fail(absl::StrCat(c.kind, " of node ", subject->spec().name, ": ", ms.size(), " of ", want,
                      " nodes saw it within ", absl::FormatDuration(options_.change_timeout)));
    if (!health_failed_) ReportUnmatched(c.kind, live);
  }
  if (leave && !subject->WaitDone(absl::Now() + absl::Seconds(10))) {
    Fail(absl::StrCat("leave: node ", subject->spec().name, "'s cancelled session did not end within 10 s"));
  }
  if (!leave) {
    FakeNode::Snapshot s = subject->GetSnapshot();
    if (!s.welcomed || s.welcome_id != subject->spec().id) {
      Fail(absl::StrCat("join: node ", subject->spec().name, " has no Welcome with its id"));
    }
  }
  return c;
}

LoadResult LoadRun::Run() {
  LoadResult r;
  r.nodes = options_.nodes;
  r.channels = static_cast<uint32_t>(channels_.size());
  if (Register(&r)) {
    r.heartbeat_interval_ms = heartbeat_ms_.load();
    Steady(&r);
    for (uint32_t i = 0; i < options_.changes && !health_failed_; ++i) {
      r.changes.push_back(Change(/*leave=*/i % 2 == 0));
      if (!r.changes.back().ok) break;
    }
  }
  r.heartbeat_interval_ms = heartbeat_ms_.load();
  r.errors = tally_.counts().errors;
  r.error_messages = tally_.errors();
  return r;
}

void LoadRun::TickerLoop() {
  // Spreads each node's heartbeats evenly over the interval: 20 slices per interval.
  constexpr int kSlices = 20;
  while (!stop_ticker_.HasBeenNotified()) {
    const uint32_t interval_ms = heartbeat_ms_.load();
    if (interval_ms == 0) {   // no Welcome yet: nothing to send
      stop_ticker_.WaitForNotificationWithTimeout(absl::Milliseconds(10));
      continue;
    }
    const std::vector<FakeNode*> live = Live();
    const absl::Duration slice = absl::Milliseconds(interval_ms) / kSlices;
    absl::Time next = absl::Now();
    for (int s = 0; s < kSlices && !stop_ticker_.HasBeenNotified(); ++s) {
      for (size_t i = s; i < live.size(); i += kSlices) live[i]->Heartbeat();
      next += slice;
      stop_ticker_.WaitForNotificationWithDeadline(next);
    }
  }
}

void LoadRun::Teardown() {
  if (torn_down_) return;
  torn_down_ = true;
  if (!stop_ticker_.HasBeenNotified()) stop_ticker_.Notify();
  if (ticker_.joinable()) ticker_.join();
  std::vector<FakeNode*> all;
  {
    absl::MutexLock lock(&mu_);
    for (auto& n : nodes_) all.push_back(n.get());
  }
  for (FakeNode* n : all) n->Close();
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  bool all_done = true;
  for (FakeNode* n : all) all_done = n->WaitDone(deadline) && all_done;
  absl::MutexLock lock(&mu_);
  live_.clear();
  if (!all_done) {
    // A reactor gRPC may still call must outlive the call: leak rather than free it.
    for (auto& n : nodes_) (void)n.release();
  }
  nodes_.clear();
}

}  // namespace ferry::perf
