#include "control/collectives/group_programs.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/dtype.h"

namespace ferry::control {
namespace {

uint64_t RoundUp(uint64_t v, uint64_t m) { return (v + m - 1) / m * m; }
uint64_t CeilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

struct Range {
  uint32_t first = 0, end = 0;
  bool empty() const { return first >= end; }
};

// The program every rank's starts from: op, deadline, window, and its predecessor as peer.
proto::CollectiveProgram Base(const GroupProgramSpec& spec, uint32_t rank, bool with_pred) {
  proto::CollectiveProgram p;
  p.set_op_id(spec.op_id);
  p.set_deadline_unix_ms(spec.deadline_unix_ms);
  p.set_op(spec.op);
  p.set_dtype(spec.dtype);
  p.set_window(spec.window);
  if (with_pred) {
    const uint32_t n = static_cast<uint32_t>(spec.ranks.size());
    const GroupRank& pred = spec.ranks[(rank + n - 1) % n];
    proto::ProgramPeer* peer = p.add_peers();
    peer->set_node(pred.node);
    peer->set_address(pred.address);
  }
  return p;
}

proto::ObjectMeta MetaOf(const GroupProgramSpec& spec, uint64_t size, uint64_t incarnation) {
  proto::ObjectMeta m;
  m.set_size(size);
  m.set_dtype(spec.input.dtype());
  const uint64_t width = DTypeSize(static_cast<DType>(spec.input.dtype()));
  m.set_count(size / std::max<uint64_t>(width, 1));
  m.set_incarnation(incarnation);
  return m;
}

proto::ObjectRef RefOf(const proto::ObjectRef& like, const std::string& key) {
  proto::ObjectRef r;
  r.set_ns(like.ns());
  r.set_key(key);
  return r;
}

proto::ProgramObject* AddObject(proto::CollectiveProgram& p, const proto::ObjectRef& ref, const proto::ObjectMeta& meta,
                                uint32_t chunk) {
  proto::ProgramObject* o = p.add_objects();
  *o->mutable_ref() = ref;
  *o->mutable_meta() = meta;
  o->set_chunk_size(chunk);
  return o;
}

void InitFrom(proto::ProgramObject* o, const proto::ObjectRef& input, uint64_t dst_offset, uint64_t len, Range ready) {
  *o->mutable_init_from() = input;
  o->set_init_src_offset(0);
  o->set_init_dst_offset(dst_offset);
  o->set_init_len(len);
  o->set_ready_first(ready.first);
  o->set_ready_end(ready.end);
}

void AddStep(proto::CollectiveProgram& p, proto::ProgramStep::Kind kind, NodeId peer, const proto::ObjectRef& src,
             const proto::ObjectRef& dst, Range chunks, uint32_t dst_first = 0) {
  if (chunks.empty()) return;
  proto::ProgramStep* s = p.add_steps();
  s->set_kind(kind);
  s->set_peer(peer);
  *s->mutable_src() = src;
  *s->mutable_dst() = dst;
  s->set_first_chunk(chunks.first);
  s->set_end_chunk(chunks.end);
  s->set_dst_first_chunk(kind == proto::ProgramStep::COPY ? dst_first : chunks.first);
}

// A chain's chunk: about 1/32 of the object (the chain's fill costs a chunk per hop), at least
// 64 KiB where the object has that, at most max_chunk; a multiple of the element width.
uint32_t ChainChunk(uint64_t size, uint32_t width, uint32_t max_chunk) {
  uint64_t c = RoundUp(CeilDiv(size, 32), width);
  c = std::max<uint64_t>(c, std::min<uint64_t>(64 * 1024, size));
  c = std::min<uint64_t>({c, max_chunk, RoundUp(size, width)});
  return static_cast<uint32_t>(c);
}

}  // namespace

std::string GroupScratchKey(OpId op) { return absl::StrCat("ferry.group/", op, "/scratch"); }

uint32_t BlockChunk(uint64_t block, uint32_t width, uint32_t max_chunk) {
  if (block == 0 || width == 0 || block % width != 0) return 0;
  const uint64_t elements = block / width;
  const uint64_t least = CeilDiv(block, max_chunk);   // chunks per block at the least
  // The first chunk count from `least` up that divides the element count (bounded search: a
  // block whose element count has no such factor nearby gets none).
  for (uint64_t m = least; m <= elements && m <= least * 64 + 64; ++m) {
    if (elements % m == 0) return static_cast<uint32_t>(block / m);
  }
  return 0;
}

absl::StatusOr<GroupPrograms> CompileGroupPrograms(const GroupProgramSpec& spec) {
  const uint32_t n = static_cast<uint32_t>(spec.ranks.size());
  if (n < 2) return absl::InvalidArgumentError("a group collective needs at least two ranks");
  if (spec.inputs.size() != n) return absl::InvalidArgumentError("one input per rank");
  if (spec.root >= n) return absl::InvalidArgumentError(absl::StrCat("root rank ", spec.root, " of ", n));
  const uint64_t size = spec.input.size();
  const uint32_t width = static_cast<uint32_t>(std::max<uint64_t>(DTypeSize(static_cast<DType>(spec.input.dtype())), 1));
  if (size == 0 || size % width != 0) return absl::InvalidArgumentError("the input size is not whole elements");
  if (size > UINT32_MAX * uint64_t{spec.max_chunk}) return absl::InvalidArgumentError("the input is too large");
  const bool reducing = spec.kind == proto::GROUP_ALLREDUCE || spec.kind == proto::GROUP_REDUCE_SCATTER ||
                        spec.kind == proto::GROUP_REDUCE;
  if (reducing && spec.dtype == proto::BYTES) {
    return absl::InvalidArgumentError("a reducing group collective needs a numeric dtype, not BYTES");
  }
  const proto::ObjectRef scratch = RefOf(spec.result, GroupScratchKey(spec.op_id));
  const proto::ObjectRef& result = spec.result;
  const uint64_t inc = spec.result_incarnation;
  GroupPrograms out;
  out.programs.reserve(n);
  out.result_meta.resize(n);
  auto pred_of = [&](uint32_t r) { return spec.ranks[(r + n - 1) % n].node; };
  auto mod = [&](int64_t v) { return static_cast<uint32_t>(((v % n) + n) % n); };

  switch (spec.kind) {
    case proto::GROUP_ALLREDUCE: {
      // About four chunks per segment (a window's worth in flight), 64 KiB at the least
      // where a segment has that, max_chunk at the most. Measured on 8 nodes at 1 Gbit/s
      // (docs/benchmarks.md "Static groups"): 8 chunks of 16 KiB, or 2 of 256 KiB, per
      // segment are slower at every size from 1 MiB to 64 MiB.
      uint64_t c = RoundUp(CeilDiv(size, 4 * uint64_t{n}), width);
      c = std::max<uint64_t>(c, std::min<uint64_t>(64 * 1024, RoundUp(CeilDiv(size, n), width)));
      c = std::min<uint64_t>({c, spec.max_chunk, size});
      const uint32_t chunks = static_cast<uint32_t>(CeilDiv(size, c));
      auto seg = [&](uint32_t k) {
        return Range{static_cast<uint32_t>(uint64_t{k} * chunks / n), static_cast<uint32_t>(uint64_t{k + 1} * chunks / n)};
      };
      for (uint32_t r = 0; r < n; ++r) {
        proto::CollectiveProgram p = Base(spec, r, true);
        InitFrom(AddObject(p, scratch, MetaOf(spec, size, inc + 1), static_cast<uint32_t>(c)), spec.inputs[r], 0, size,
                 seg(r));
        AddObject(p, result, MetaOf(spec, size, inc), static_cast<uint32_t>(c));
        for (uint32_t s = 0; s + 1 < n; ++s) {
          AddStep(p, proto::ProgramStep::PULL_REDUCE, pred_of(r), scratch, scratch, seg(mod(int64_t{r} - 1 - s)));
        }
        const Range mine = seg((r + 1) % n);
        AddStep(p, proto::ProgramStep::COPY, 0, scratch, result, mine, mine.first);
        for (uint32_t s = 0; s + 1 < n; ++s) {
          AddStep(p, proto::ProgramStep::PULL, pred_of(r), result, result, seg(mod(int64_t{r} - s)));
        }
        *p.add_publish() = result;
        out.result_meta[r] = MetaOf(spec, size, inc);
        out.programs.push_back(std::move(p));
      }
      break;
    }
    case proto::GROUP_REDUCE_SCATTER: {
      if (size % (uint64_t{n} * width) != 0) {
        return absl::InvalidArgumentError(absl::StrCat("reduce-scatter of ", size, " bytes over ", n,
                                                       " ranks: the size must be a multiple of ranks x element size (",
                                                       uint64_t{n} * width, ")"));
      }
      const uint64_t block = size / n;
      const uint32_t c = BlockChunk(block, width, spec.max_chunk);
      if (c == 0) {
        return absl::InvalidArgumentError(absl::StrCat("reduce-scatter segments of ", block / width,
                                                       " elements cannot be cut into chunks of at most ",
                                                       spec.max_chunk, " bytes; use a size with small factors"));
      }
      const uint32_t m = static_cast<uint32_t>(block / c);
      // Segment k of the scratch, shifted by one so that rank r ends with segment r.
      auto seg = [&](int64_t k) { const uint32_t j = mod(k - 1); return Range{j * m, (j + 1) * m}; };
      for (uint32_t r = 0; r < n; ++r) {
        proto::CollectiveProgram p = Base(spec, r, true);
        InitFrom(AddObject(p, scratch, MetaOf(spec, size, inc + 1), c), spec.inputs[r], 0, size, seg(r));
        AddObject(p, result, MetaOf(spec, block, inc), c);
        for (uint32_t s = 0; s + 1 < n; ++s) {
          AddStep(p, proto::ProgramStep::PULL_REDUCE, pred_of(r), scratch, scratch, seg(int64_t{r} - 1 - s));
        }
        AddStep(p, proto::ProgramStep::COPY, 0, scratch, result, seg(int64_t{r} + 1), 0);
        *p.add_publish() = result;
        out.result_meta[r] = MetaOf(spec, block, inc);
        out.programs.push_back(std::move(p));
      }
      break;
    }
    case proto::GROUP_ALLGATHER: {
      const uint64_t block = size;
      uint32_t c = BlockChunk(block, width, spec.max_chunk);
      if (c == 0) {
        // A copy needs no staging slot: one chunk per block (each step moves one block anyway).
        if (block > UINT32_MAX) return absl::InvalidArgumentError("allgather blocks above 4 GiB need a size with small factors");
        c = static_cast<uint32_t>(block);
      }
      const uint32_t m = static_cast<uint32_t>(block / c);
      const uint64_t total = block * n;
      for (uint32_t r = 0; r < n; ++r) {
        proto::CollectiveProgram p = Base(spec, r, true);
        InitFrom(AddObject(p, result, MetaOf(spec, total, inc), c), spec.inputs[r], uint64_t{r} * block, block,
                 Range{r * m, (r + 1) * m});
        for (uint32_t s = 0; s + 1 < n; ++s) {
          const uint32_t k = mod(int64_t{r} - 1 - s);
          AddStep(p, proto::ProgramStep::PULL, pred_of(r), result, result, Range{k * m, (k + 1) * m});
        }
        *p.add_publish() = result;
        out.result_meta[r] = MetaOf(spec, total, inc);
        out.programs.push_back(std::move(p));
      }
      break;
    }
    case proto::GROUP_BROADCAST: {
      const uint32_t c = ChainChunk(size, width, spec.max_chunk);
      const uint32_t chunks = static_cast<uint32_t>(CeilDiv(size, c));
      for (uint32_t r = 0; r < n; ++r) {
        const bool root = r == spec.root;
        proto::CollectiveProgram p = Base(spec, r, !root);
        proto::ProgramObject* o = AddObject(p, result, MetaOf(spec, size, inc), c);
        if (root) {
          InitFrom(o, spec.inputs[r], 0, size, Range{0, chunks});
        } else {
          AddStep(p, proto::ProgramStep::PULL, pred_of(r), result, result, Range{0, chunks});
        }
        *p.add_publish() = result;
        out.result_meta[r] = MetaOf(spec, size, inc);
        out.programs.push_back(std::move(p));
      }
      break;
    }
    case proto::GROUP_REDUCE: {
      const uint32_t c = ChainChunk(size, width, spec.max_chunk);
      const uint32_t chunks = static_cast<uint32_t>(CeilDiv(size, c));
      const uint32_t head = (spec.root + 1) % n;
      for (uint32_t r = 0; r < n; ++r) {
        const bool root = r == spec.root;
        const bool is_head = r == head;
        proto::CollectiveProgram p = Base(spec, r, !is_head);
        const proto::ObjectRef& mine = root ? result : scratch;
        InitFrom(AddObject(p, mine, MetaOf(spec, size, root ? inc : inc + 1), c), spec.inputs[r], 0, size,
                 is_head ? Range{0, chunks} : Range{});
        if (!is_head) AddStep(p, proto::ProgramStep::PULL_REDUCE, pred_of(r), scratch, mine, Range{0, chunks});
        if (root) {
          *p.add_publish() = result;
          out.result_meta[r] = MetaOf(spec, size, inc);
        }
        out.programs.push_back(std::move(p));
      }
      break;
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown group collective kind ", static_cast<int>(spec.kind)));
  }
  return out;
}

}  // namespace ferry::control
