#include "dataplane/engine/reduce_sink.h"

#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"
#include "core/names.h"
#include "core/reduce.h"

namespace ferry::dataplane {

// What the sinks of one position share: the object, and per chunk how many sinks have combined
// it and whether one is combining it now.
struct ReduceSink::Group {
  Group(ObjectStore* s, ReduceSinkSpec sp, uint32_t n)
      : store(s),
        spec(std::move(sp)),
        children(n),
        name(PrintableName(spec.ns, spec.key)),
        object_base(static_cast<uint8_t*>(spec.object_region.base) + spec.object_offset),
        chunks((spec.object_size + spec.chunk_size - 1) / spec.chunk_size),
        combined(chunks, 0),
        busy(chunks, 0) {}

  // object[first, +len) = op(object[first, +len), src), serialised per chunk; marks chunk k
  // once every child has combined it. k < chunks (Destination checked first == k * chunk).
  absl::Status Combine(uint32_t k, uint64_t first, const uint8_t* src, uint64_t len) {
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(&IsZero, &busy[k]));   // another child's combine of chunk k
      busy[k] = 1;
    }
    absl::Status st = ReduceInto(spec.op, spec.dtype, object_base + first, src, len);
    bool complete = false;
    {
      absl::MutexLock lock(&mu);
      busy[k] = 0;
      if (st.ok()) complete = ++combined[k] == children;
    }
    if (complete) store->MarkChunk(spec.ns, spec.key, k);
    return st;
  }

  static bool IsZero(uint32_t* v) { return *v == 0; }

  ObjectStore* const store;
  const ReduceSinkSpec spec;
  const uint32_t children;
  const std::string name;        // printable, for errors
  uint8_t* const object_base;    // the object's byte 0 in this address space
  const uint64_t chunks;
  absl::Mutex mu;
  std::vector<uint32_t> combined ABSL_GUARDED_BY(mu);   // per chunk: sinks that combined it
  std::vector<uint32_t> busy ABSL_GUARDED_BY(mu);       // per chunk: 1 while one is combining it
};

namespace {

// OK if `region` is a usable host region and [offset, offset+length) lies within it.
absl::Status CheckRegion(const MemoryRegion& region, uint64_t offset, uint64_t length, const std::string& what) {
  if (absl::Status st = CheckSupportedKind(region.kind, what); !st.ok()) return st;
  if (region.id == kNoRegion || region.base == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": region has no id or no base address"));
  }
  return CheckRange(what, region.length, offset, length);
}

absl::Status CheckSpec(const ObjectStore* store, const ReduceSinkSpec& spec, uint32_t children) {
  const std::string name = absl::StrCat("reduce sink for ", PrintableName(spec.ns, spec.key));
  if (store == nullptr) return absl::InvalidArgumentError(absl::StrCat(name, ": no object store"));
  if (children == 0 || children > ReduceSink::kMaxChildren) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": ", children, " children (1 to ",
                                                   ReduceSink::kMaxChildren, ")"));
  }
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
  // window * chunk_size fits 64 bits (both are 32-bit); times children need not: check.
  const uint64_t per_child = uint64_t{spec.window} * spec.chunk_size;
  if (per_child > std::numeric_limits<uint64_t>::max() / children) {
    return absl::OutOfRangeError(absl::StrCat(name, ": ", children, " x ", spec.window, " slots of ",
                                              spec.chunk_size, " bytes overflow"));
  }
  const uint64_t scratch_len = per_child * children;
  if (absl::Status st = CheckRegion(spec.scratch_region, spec.scratch_offset, scratch_len,
                                    absl::StrCat(name, ": ", children, " x ", spec.window, " staging slots of ",
                                                 spec.chunk_size, " bytes"));
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
  absl::StatusOr<std::vector<std::unique_ptr<ReduceSink>>> group = CreateGroup(store, std::move(spec), 1);
  if (!group.ok()) return group.status();
  return std::move(group->front());
}

absl::StatusOr<std::vector<std::unique_ptr<ReduceSink>>> ReduceSink::CreateGroup(ObjectStore* store,
                                                                                 ReduceSinkSpec spec,
                                                                                 uint32_t children) {
  if (absl::Status st = CheckSpec(store, spec, children); !st.ok()) return st;
  auto group = std::make_shared<Group>(store, std::move(spec), children);
  std::vector<std::unique_ptr<ReduceSink>> sinks;
  for (uint32_t i = 0; i < children; ++i) sinks.push_back(std::unique_ptr<ReduceSink>(new ReduceSink(group, i)));
  return sinks;
}

ReduceSink::ReduceSink(std::shared_ptr<Group> group, uint32_t index)
    : group_(std::move(group)),
      slots_base_(static_cast<uint8_t*>(group_->spec.scratch_region.base) + group_->spec.scratch_offset +
                  uint64_t{index} * group_->spec.window * group_->spec.chunk_size),
      slots_offset_(group_->spec.scratch_offset + uint64_t{index} * group_->spec.window * group_->spec.chunk_size) {
  absl::MutexLock lock(&mu_);
  free_.reserve(group_->spec.window);
  for (uint32_t i = group_->spec.window; i > 0; --i) free_.push_back(i - 1);   // slot 0 handed out first
  combined_.assign(group_->chunks, false);
}

absl::StatusOr<LocalSlice> ReduceSink::Destination(uint32_t k, uint64_t first, uint64_t len) {
  const ReduceSinkSpec& spec = group_->spec;
  // Built only on an error path (Destination runs once per chunk).
  auto what = [&] { return absl::StrCat("reduce of chunk ", k, " of ", group_->name); };
  if (first > spec.object_size || len > spec.object_size - first || k >= group_->chunks) {   // overflow-safe
    return absl::OutOfRangeError(absl::StrCat(what(), ": bytes [", first, ", +", len,
                                              ") are not within the object's ", spec.object_size, " bytes (",
                                              group_->chunks, " chunks)"));
  }
  const size_t width = DTypeSize(spec.dtype);
  if (first != uint64_t{k} * spec.chunk_size || len > spec.chunk_size || len % width != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what(), ": bytes [", first, ", +", len, ") are not chunk ", k,
                                                   " of ", spec.chunk_size, " bytes or split a ",
                                                   DTypeName(spec.dtype), " element"));
  }
  absl::MutexLock lock(&mu_);
  if (in_flight_.contains(k) || combined_[k]) {
    return absl::FailedPreconditionError(absl::StrCat(
        what(), in_flight_.contains(k) ? ": the chunk already holds a staging slot"
                                       : ": this child's chunk was combined already (restart the partial sum)"));
  }
  if (free_.empty()) {
    return absl::ResourceExhaustedError(absl::StrCat(what(), ": all ", spec.window, " staging slots are in use"));
  }
  const uint32_t slot = free_.back();
  free_.pop_back();
  in_flight_.emplace(k, InFlight{slot, first, len});
  return LocalSlice{spec.scratch_region.id, slots_offset_ + uint64_t{slot} * spec.chunk_size, len};
}

absl::Status ReduceSink::Landed(uint32_t k) {
  InFlight chunk;
  {
    absl::MutexLock lock(&mu_);
    auto it = in_flight_.find(k);
    if (it == in_flight_.end() || it->second.landing) {
      return absl::FailedPreconditionError(absl::StrCat("reduce of chunk ", k, " of ", group_->name,
                                                        ": landed without a staging slot (or twice)"));
    }
    it->second.landing = true;   // a duplicate Landed during the combine is refused too
    chunk = it->second;
  }
  // Outside the lock: combines of different chunks overlap. The slot stays ours until FreeSlot.
  absl::Status st = group_->Combine(k, chunk.first, slots_base_ + uint64_t{chunk.slot} * group_->spec.chunk_size,
                                    chunk.len);
  FreeSlot(k, st.ok());
  if (!st.ok()) {
    return absl::Status(st.code(), absl::StrCat("reduce of chunk ", k, " of ", group_->name, ": ", st.message()));
  }
  return absl::OkStatus();
}

void ReduceSink::Abandoned(uint32_t k) { FreeSlot(k, false); }

void ReduceSink::FreeSlot(uint32_t k, bool combined) {
  absl::MutexLock lock(&mu_);
  auto it = in_flight_.find(k);
  if (it == in_flight_.end()) return;
  free_.push_back(it->second.slot);
  in_flight_.erase(it);
  if (combined) combined_[k] = true;
}

uint32_t ReduceSink::free_slots() const {
  absl::MutexLock lock(&mu_);
  return static_cast<uint32_t>(free_.size());
}

}  // namespace ferry::dataplane
