// One load run against one coordinator: register N fake nodes (in waves), hold a steady window
// of heartbeats, then make membership changes (a node leaves, a node joins) and time how long
// each takes to reach every node. Every phase checks what the nodes saw; a mismatch is an
// error in the result, not a crash.
//
// Threading: Run and Teardown from one thread. The run owns a heartbeat ticker thread;
// gRPC's callback threads drive the fake nodes.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "perf/coord_load/coord_process.h"
#include "perf/coord_load/fake_node.h"

namespace ferry::perf {

struct LoadOptions {
  uint64_t nodes = 4096;
  uint32_t nodes_per_channel = 64;      // gRPC caps concurrent streams per HTTP/2 connection
  uint32_t register_window = 64;        // nodes registered per wave (a wave waits for the last to converge)
  absl::Duration register_timeout = absl::Seconds(300);
  absl::Duration steady = absl::Seconds(10);
  uint32_t changes = 6;                 // alternately: a node leaves, a node joins
  absl::Duration change_timeout = absl::Seconds(60);
  std::string token;
  uint32_t dp_address_bytes = 96;       // "FUX1" + node id + a fake UCX worker address
  uint64_t seed = 1;
};

struct ChangeResult {
  std::string kind;                     // "leave" or "join"
  uint64_t live_after = 0;              // nodes that had to see it
  bool ok = false;
  double p50_ms = 0, max_ms = 0;        // receipt of the Membership reflecting it, from the change
  uint64_t bytes = 0, messages = 0;     // received by all nodes between the change and the last receipt
  double coord_cpu_s = 0;               // coordinator CPU over that time (heartbeats included)
};

struct LoadResult {
  uint64_t nodes = 0;
  uint32_t channels = 0;
  uint32_t heartbeat_interval_ms = 0;
  bool registered = false;              // all N welcomed and converged within the timeout
  uint64_t welcomed = 0;                // nodes welcomed (== nodes when registered)
  double welcome_s = 0;                 // from the first Hello until the last Welcome
  double converge_s = 0;                // ... until every node's membership holds all N
  uint64_t register_bytes = 0, register_messages = 0;
  double register_coord_cpu_s = 0;
  ProcSample coord_after_register;      // threads and RSS (zeros when the pid is unknown)
  uint64_t client_threads = 0;
  double steady_s = 0;
  uint64_t steady_heartbeats = 0;
  double steady_coord_cpu_s = 0;
  double steady_client_cpu_s = 0;
  uint64_t steady_membership_messages = 0;
  std::vector<ChangeResult> changes;
  uint64_t errors = 0;
  std::vector<std::string> error_messages;
};

class LoadRun {
 public:
  // `health` is called every 200 ms while waiting; a non-OK status aborts the run (the
  // coordinator died or outgrew its memory budget). `coord_pid` 0: coordinator not sampled.
  LoadRun(LoadOptions options, std::string address, pid_t coord_pid, std::function<absl::Status()> health);
  ~LoadRun();   // Teardown()

  // Runs every phase. Errors found are in the result; the run stops at the first phase that
  // cannot complete.
  LoadResult Run();
  // Stops the ticker, closes every session and waits (bounded) for their ends. Stop a
  // coordinator the run started before this: otherwise each close is a membership change.
  void Teardown();

 private:
  // Waits in 200 ms slices (checking health) until `pred` holds; false on timeout or health error.
  bool Wait(const std::function<bool(const Tally::Counts&)>& pred, absl::Time deadline);
  FakeNode* AddNode();
  void StartNode(FakeNode* node);
  void SetTargets(const std::vector<FakeNode*>& nodes);
  double CoordCpu();
  void Fail(std::string what);
  bool Register(LoadResult* r);
  void Steady(LoadResult* r);
  ChangeResult Change(bool leave);
  void ReportUnmatched(const std::string& phase, const std::vector<FakeNode*>& nodes);
  std::vector<FakeNode*> Live();
  void TickerLoop();

  const LoadOptions options_;
  const std::string address_;
  const pid_t coord_pid_;
  const std::function<absl::Status()> health_;
  const std::string method_;
  Tally tally_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  std::vector<uint32_t> channel_load_;
  uint64_t next_index_ = 0;
  uint64_t change_ = 0;
  SetFingerprint expected_;
  bool health_failed_ = false;
  uint64_t rng_;

  absl::Mutex mu_;   // nodes_ / live_ membership, read by the ticker
  std::vector<std::unique_ptr<FakeNode>> nodes_ ABSL_GUARDED_BY(mu_);
  std::vector<FakeNode*> live_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint32_t> heartbeat_ms_{0};
  absl::Notification stop_ticker_;
  std::thread ticker_;
  bool torn_down_ = false;
};

}  // namespace ferry::perf
