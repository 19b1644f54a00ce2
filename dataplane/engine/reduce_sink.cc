#include "dataplane/engine/reduce_sink.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/names.h"
#include "core/reduce.h"

namespace ferry::dataplane {
namespace {

// OK if `region` is a usable host region and [offset, offset+length) lies within it.
absl::Status CheckRegion(const MemoryRegion& region, uint64_t offset, uint64_t length, const std::string& what) {
  if (absl::Status st = CheckSupportedKind(region.kind, what); !st.ok()) return st;
  if (region.id == kNoRegion || region.base == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": region has no id or no base address"));
  }
  return CheckRange(what, region.length, offset, length);
}

absl::Status CheckSpec(const ObjectStore* store, const ReduceSinkSpec& spec) {
  const std::string name = absl::StrCat("reduce sink for ", PrintableName(spec.ns, spec.key));
  if (store == nullptr) return absl::InvalidArgumentError(absl::StrCat(name, ": no object store"));
  if (!DTypeSupports(spec.dtype, spec.op)) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": op ", ReduceOpName(spec.op), " (",
                                                   static_cast<int>(spec.op), ") is not defined on dtype ",
                                                   DTypeName(spec.dtype), " (", static_cast<int>(spec.dtype), ")"));
  }
  const size_t width = DTypeSize(spec.dtype);
  if (spec.window == 0 || spec.chunk_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": window ", spec.window, " and chunk size ",
                                                   spec.chunk_size, " must be > 0"));
  }
  if (spec.chunk_size % width != 0 || spec.object_size % width != 0) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": chunk size ", spec.chunk_size, " and object size ",
                                                   spec.object_size, " must be multiples of the ",
                                                   DTypeName(spec.dtype), " element size ", width));
  }
  if (absl::Status st = CheckRegion(spec.object_region, spec.object_offset, spec.object_size,
                                    absl::StrCat(name, ": object"));
      !st.ok()) {
    return st;
  }
  const uint64_t scratch_len = uint64_t{spec.window} * spec.chunk_size;   // < 2^64: both are 32-bit
  if (absl::Status st = CheckRegion(spec.scratch_region, spec.scratch_offset, scratch_len,
                                    absl::StrCat(name, ": ", spec.window, " staging slots of ", spec.chunk_size,
                                                 " bytes"));
      !st.ok()) {
    return st;
  }
  // Both ranges are within live regions now, so their addresses do not wrap.
  const auto obj = reinterpret_cast<uintptr_t>(spec.object_region.base) + spec.object_offset;
  const auto scr = reinterpret_cast<uintptr_t>(spec.scratch_region.base) + spec.scratch_offset;
  if (obj < scr + scratch_len && scr < obj + spec.object_size) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": the staging slots overlap the object"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ReduceSink>> ReduceSink::Create(ObjectStore* store, ReduceSinkSpec spec) {
  if (absl::Status st = CheckSpec(store, spec); !st.ok()) return st;
  return std::unique_ptr<ReduceSink>(new ReduceSink(store, std::move(spec)));
}

ReduceSink::ReduceSink(ObjectStore* store, ReduceSinkSpec spec)
    : store_(store),
      spec_(std::move(spec)),
      object_base_(static_cast<uint8_t*>(spec_.object_region.base) + spec_.object_offset),
      scratch_base_(static_cast<uint8_t*>(spec_.scratch_region.base) + spec_.scratch_offset) {
  absl::MutexLock lock(&mu_);
  free_.reserve(spec_.window);
  for (uint32_t i = spec_.window; i > 0; --i) free_.push_back(i - 1);   // slot 0 handed out first
}

absl::StatusOr<LocalSlice> ReduceSink::Destination(uint32_t k, uint64_t first, uint64_t len) {
  if (first > spec_.object_size || len > spec_.object_size - first) {   // overflow-safe
    return CheckRange(absl::StrCat("reduce of chunk ", k, " of ", PrintableName(spec_.ns, spec_.key)),
                      spec_.object_size, first, len);
  }
  const size_t width = DTypeSize(spec_.dtype);
  if (len > spec_.chunk_size || first % width != 0 || len % width != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reduce of chunk ", k, " of ", PrintableName(spec_.ns, spec_.key), ": bytes [", first, ", +", len,
        ") exceed the ", spec_.chunk_size, "-byte slot or split a ", DTypeName(spec_.dtype), " element"));
  }
  absl::MutexLock lock(&mu_);
  if (in_flight_.contains(k)) {
    return absl::FailedPreconditionError(absl::StrCat("reduce of chunk ", k, " of ",
                                                      PrintableName(spec_.ns, spec_.key),
                                                      ": the chunk already holds a staging slot"));
  }
  if (free_.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat("reduce of chunk ", k, " of ",
                                                     PrintableName(spec_.ns, spec_.key), ": all ", spec_.window,
                                                     " staging slots are in use"));
  }
  const uint32_t slot = free_.back();
  free_.pop_back();
  in_flight_.emplace(k, InFlight{slot, first, len});
  return LocalSlice{spec_.scratch_region.id, spec_.scratch_offset + uint64_t{slot} * spec_.chunk_size, len};
}

absl::Status ReduceSink::Landed(uint32_t k) {
  InFlight chunk;
  {
    absl::MutexLock lock(&mu_);
    auto it = in_flight_.find(k);
    if (it == in_flight_.end() || it->second.landing) {
      return absl::FailedPreconditionError(absl::StrCat("reduce of chunk ", k, " of ",
                                                        PrintableName(spec_.ns, spec_.key),
                                                        ": landed without a staging slot (or twice)"));
    }
    it->second.landing = true;   // a duplicate Landed during the combine is refused too
    chunk = it->second;
  }
  // Outside the lock: combines of different chunks overlap. The slot stays ours until FreeSlot.
  absl::Status st = ReduceInto(spec_.op, spec_.dtype, object_base_ + chunk.first,
                               scratch_base_ + uint64_t{chunk.slot} * spec_.chunk_size, chunk.len);
  if (st.ok()) store_->MarkChunk(spec_.ns, spec_.key, k);
  FreeSlot(k);
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat("reduce of chunk ", k, " of ", PrintableName(spec_.ns, spec_.key),
                                                ": ", st.message()));
  }
  return absl::OkStatus();
}

void ReduceSink::Abandoned(uint32_t k) { FreeSlot(k); }

void ReduceSink::FreeSlot(uint32_t k) {
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(k);
  if (it == in_flight_.end()) return;
  free_.push_back(it->second.slot);
  in_flight_.erase(it);
}

uint32_t ReduceSink::free_slots() const {
  absl::MutexLock lock(&mu_);
  return static_cast<uint32_t>(free_.size());
}

}  // namespace ferry::dataplane
