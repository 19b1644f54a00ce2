// How ferry-perf moves a whole model version with today's SDK: one call per tensor, with at
// most `inflight` calls outstanding (threads). These four functions are the only place the
// weight-sync collectives (model_collectives.cc) touch the SDK for the transfer itself; when
// issue 14's batch API exists, each body becomes one batch call (or one call per batch of
// `inflight` objects) and nothing else changes.
//
// Thread-safety: each function blocks until all its calls returned; it uses up to
// `inflight` threads internally and joins them. Client is thread-safe (include/ferry/client.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "ferry/client.h"

namespace ferry::perf {

// Runs fn(0) .. fn(n-1) on min(inflight, n) threads, each taking the next index; after the
// first error no new index is started. Returns OK or the error of the lowest failing index.
[[nodiscard]] absl::Status ForEachBounded(size_t n, int inflight,
                                          const std::function<absl::Status(size_t)>& fn);

// One tensor of a model version as the trainer holds it: its name and its bytes (in the
// trainer's own memory, outside the arena).
struct TensorData {
  ObjectName name;
  std::span<const uint8_t> bytes;
};

// Puts every tensor on the client's node (Create + copy + Seal each, as Client::Put).
[[nodiscard]] absl::Status PutModel(Client& client, const std::vector<TensorData>& tensors,
                                    int inflight);
// The same in one Client::PutBatch; the first entry that failed is the error.
[[nodiscard]] absl::Status PutModelBatch(Client& client, const std::vector<TensorData>& tensors);

// Gets every name on the client's node; views[i] is names[i]'s pinned view.
[[nodiscard]] absl::StatusOr<std::vector<ObjectView>> GetModel(
    Client& client, const std::vector<ObjectName>& names, int inflight, absl::Duration timeout);
// The same in one Client::GetBatch.
[[nodiscard]] absl::StatusOr<std::vector<ObjectView>> GetModelBatch(Client& client,
                                                                    const std::vector<ObjectName>& names,
                                                                    absl::Duration timeout);

// Broadcasts every name from the client's node to every live node; results[i] is names[i]'s.
// Batch API: BroadcastBatch(names, {}, timeout).
[[nodiscard]] absl::StatusOr<std::vector<BroadcastResult>> BroadcastModel(
    Client& client, const std::vector<ObjectName>& names, int inflight, absl::Duration timeout);

// Deletes every name (cluster-wide); failures are logged, not returned: returns how many
// Deletes failed. `batched`: one Client::DeleteBatch.
uint64_t DeleteModel(Client& client, const std::vector<ObjectName>& names, int inflight, bool batched = false);

// 64-bit content hash (XXH3-64) the receivers compare against.
uint64_t ContentHash(std::span<const uint8_t> bytes);

}  // namespace ferry::perf
