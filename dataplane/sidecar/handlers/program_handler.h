// A CollectiveProgram (this node's part of a static group's collective, proto/group.proto and
// control/collectives/group_programs.h): runs it and reports once on the session stream
// (ProgramReport with the program's op_id).
//
// Running a program, on the program executor:
//   1. creates its objects as receiving copies (in order), each optionally initialised from a
//      sealed local object (one memcpy) with a range of its chunks complete from the start;
//   2. runs its steps in order (a pull starting as the one before it has requested its last
//      chunk, see Execute): PULL and
//      PULL_REDUCE fetch a chunk range of
//      a peer's object (the same key, size and chunking there) through the UCX fetch path, the
//      latter into a ReduceSink that combines each chunk with the local bytes as it lands;
//      COPY copies a chunk range between two local objects. Every chunk is marked in the store
//      as it completes, so the peer pulling it from this node is served cut-through: a ring's
//      steps pipeline chunk by chunk around the ring;
//   3. seals the `publish` objects and reports them (with their bytes when they are small
//      enough to travel inline): the coordinator records each member's copy itself.
// Scratch (the objects not published) stays until ProgramEnd (a successor may still be
// pulling from it after this node is done), or, should no ProgramEnd come, until a later
// Handle finds the program's deadline long past. A failed program drops everything it created
// (its peers' pulls from it then fail, ending the collective everywhere), and ProgramEnd with
// `abort` cancels a running one and drops its results too, sealed or not (the coordinator
// records results only when every member succeeded). Drops are by incarnation
// (ObjectStore::Drop).
//
// Scratch slots for PULL_REDUCE: one set of kSetBytes per running program, in a registered
// region made at start-up, so nothing is registered on the transfer path.
//
// Threading: Handle and End are called from the coordinator session thread and never block.
// Shutdown (after ObjectFetcher::Stop) cancels the running programs and joins the executor.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/executor.h"
#include "dataplane/sidecar/handlers/reduce_handler.h"
#include "proto/group.pb.h"

namespace ferry::dataplane {

class ProgramHandler {
 public:
  // One program's staging slots: kMaxWindow chunks of the largest chunk a reducing step uses.
  static constexpr uint32_t kMaxChunk = 1 << 20;
  static constexpr uint32_t kMaxWindow = 8;
  static constexpr uint64_t kSetBytes = uint64_t{kMaxWindow} * kMaxChunk;
  // Bounds on what one program may ask for.
  static constexpr int kMaxObjects = 8;
  static constexpr int kMaxSteps = 4096;
  static constexpr int kMaxPeers = 8;
  // How long after its deadline a finished program's scratch is kept without a ProgramEnd.
  static constexpr absl::Duration kScratchGrace = absl::Seconds(30);

  // `deps` as for reduces; deps.scratch holds `deps.slot_sets` sets of kSetBytes, and at most
  // that many programs run at once (more fail at once: RESOURCE_EXHAUSTED in their report).
  // `inline_max`: the coordinator's inline_max_bytes (results that small travel in the report).
  ProgramHandler(ReduceDeps deps, std::function<uint64_t()> inline_max);
  ~ProgramHandler();   // Shutdown()

  void Handle(const proto::CollectiveProgram& program);
  void End(const proto::ProgramEnd& end);
  void Shutdown();

  // Checks a program before anything is created (INVALID_ARGUMENT naming the problem).
  static absl::Status Check(const proto::CollectiveProgram& program);

 private:
  struct Task;

  void Run(const std::shared_ptr<Task>& task, uint32_t set);
  absl::Status Execute(Task& task, uint32_t set, uint64_t* failed_peer);
  // `slots`: the byte offset of the staging slots (in deps.scratch) a reducing step uses.
  // `on_all_issued`: PullSpec's, for a pull step (null otherwise).
  absl::Status RunStep(Task& task, const proto::ProgramStep& step, uint64_t slots, std::function<void()> on_all_issued);
  // Drops what `task` created: everything (`all`) or its scratch only.
  void DropCreated(Task& task, bool all);
  void Report(const proto::CollectiveProgram& program, const absl::Status& s, uint64_t failed_peer,
              const std::vector<proto::ProgramResult>& results);
  // Forgets finished tasks (dropping their scratch) whose deadline is kScratchGrace past.
  void SweepLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const ReduceDeps deps_;
  const std::function<uint64_t()> inline_max_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<uint64_t, std::shared_ptr<Task>> tasks_ ABSL_GUARDED_BY(mu_);   // by op id
  std::vector<uint32_t> free_sets_ ABSL_GUARDED_BY(mu_);
  Executor runs_;   // owns every program thread; joined by Shutdown
};

}  // namespace ferry::dataplane
