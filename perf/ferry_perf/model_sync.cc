#include "perf/ferry_perf/model_sync.h"

#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "perf/ferry_perf/collective.h"

namespace ferry::perf {

absl::Status ForEachBounded(size_t n, int inflight, const std::function<absl::Status(size_t)>& fn) {
  std::vector<absl::Status> status(n);
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  auto worker = [&] {
    for (size_t i = next++; i < n && !failed.load(); i = next++) {
      status[i] = fn(i);
      if (!status[i].ok()) failed = true;
    }
  };
  const size_t threads = std::min<size_t>(static_cast<size_t>(std::max(inflight, 1)), n);
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  if (threads > 0) worker();  // the calling thread is one of the `inflight`
  for (std::thread& t : pool) t.join();
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status PutModel(Client& client, const std::vector<TensorData>& tensors, int inflight) {
  return ForEachBounded(tensors.size(), inflight, [&](size_t i) {
    const TensorData& t = tensors[i];
    const DType dtype = t.bytes.size() % 2 == 0 ? DType::kBF16 : DType::kBytes;
    return Annotate(client.Put(t.name, t.bytes, dtype), absl::StrCat("Put of tensor ", i, " ", t.name.key));
  });
}

absl::Status PutModelBatch(Client& client, const std::vector<TensorData>& tensors) {
  std::vector<Client::PutEntry> entries;
  entries.reserve(tensors.size());
  for (const TensorData& t : tensors) {
    entries.push_back({t.name, t.bytes, t.bytes.size() % 2 == 0 ? DType::kBF16 : DType::kBytes});
  }
  FERRY_ASSIGN_OR_RETURN(std::vector<absl::Status> outcomes, client.PutBatch(entries));
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (!outcomes[i].ok()) return Annotate(outcomes[i], absl::StrCat("PutBatch entry ", i, " ", tensors[i].name.key));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ObjectView>> GetModelBatch(Client& client, const std::vector<ObjectName>& names,
                                                      absl::Duration timeout) {
  FERRY_ASSIGN_OR_RETURN(std::vector<absl::StatusOr<ObjectView>> got, client.GetBatch(names, timeout));
  std::vector<ObjectView> views;
  views.reserve(got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i].ok()) return Annotate(got[i].status(), absl::StrCat("GetBatch entry ", i, " ", names[i].key));
    views.push_back(*std::move(got[i]));
  }
  return views;
}

absl::StatusOr<std::vector<ObjectView>> GetModel(Client& client, const std::vector<ObjectName>& names,
                                                 int inflight, absl::Duration timeout) {
  std::vector<ObjectView> views(names.size());
  FERRY_RETURN_IF_ERROR(ForEachBounded(names.size(), inflight, [&](size_t i) {
    absl::StatusOr<ObjectView> v = client.Get(names[i], timeout);
    if (!v.ok()) return Annotate(v.status(), absl::StrCat("Get of tensor ", i, " ", names[i].key));
    views[i] = std::move(*v);
    return absl::OkStatus();
  }));
  return views;
}

absl::StatusOr<std::vector<BroadcastResult>> BroadcastModel(Client& client,
                                                            const std::vector<ObjectName>& names,
                                                            int inflight, absl::Duration timeout) {
  std::vector<BroadcastResult> results(names.size());
  FERRY_RETURN_IF_ERROR(ForEachBounded(names.size(), inflight, [&](size_t i) {
    absl::StatusOr<BroadcastResult> r = client.Broadcast(names[i], {}, timeout);
    if (!r.ok()) return Annotate(r.status(), absl::StrCat("Broadcast of tensor ", i, " ", names[i].key));
    results[i] = std::move(*r);
    return absl::OkStatus();
  }));
  return results;
}

uint64_t DeleteModel(Client& client, const std::vector<ObjectName>& names, int inflight, bool batched) {
  std::atomic<uint64_t> failures{0};
  if (batched) {
    absl::StatusOr<std::vector<absl::Status>> r = client.DeleteBatch(names);
    if (!r.ok()) {
      LogLine(absl::StrCat("warning: DeleteBatch of ", names.size(), " tensors: ", r.status().ToString(),
                           "; deleting them one by one"));
    } else {
      for (size_t i = 0; i < r->size(); ++i) {
        if ((*r)[i].ok()) continue;
        if (failures++ < 5) LogLine(absl::StrCat("warning: DeleteBatch entry ", names[i].key, ": ", (*r)[i].ToString()));
      }
      return failures.load();
    }
  }
  // Never stops early: every tensor must go, or the arena fills over the iterations.
  (void)ForEachBounded(names.size(), inflight, [&](size_t i) {
    if (absl::Status s = client.Delete(names[i]); !s.ok()) {
      if (failures++ < 5) LogLine(absl::StrCat("warning: Delete of ", names[i].key, ": ", s.ToString()));
    }
    return absl::OkStatus();
  });
  return failures.load();
}

uint64_t ContentHash(std::span<const uint8_t> bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

}  // namespace ferry::perf
