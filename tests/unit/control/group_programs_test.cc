// CompileGroupPrograms (control/collectives/group_programs.h), checked by running the programs
// it makes on byte arrays: a small simulator plays every rank's ferryd (objects with per-chunk
// completion marks; a pull of chunk k waits until k is marked at the peer, as the chunk server
// holds it; PULL_REDUCE combines with core/reduce.h) and the results are compared with a
// scalar reference for every kind, on 2..8 ranks, for sizes of one element, around a chunk, and
// larger. The simulator also enforces what the data plane relies on: a chunk is never written
// after it was marked (a peer may have read it), copies read only complete chunks, pulls read
// objects of the same size and chunking, every program passes ferryd's own check
// (ProgramHandler::Check), and the ring never deadlocks.
#include "control/collectives/group_programs.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/reduce.h"
#include "dataplane/sidecar/handlers/program_handler.h"
#include "dataplane/store/chunk_progress.h"

namespace ferry::control {
namespace {

struct SimObject {
  std::vector<uint8_t> bytes;
  uint32_t chunk = 0;
  std::vector<bool> marked;
  bool all_marked() const {
    for (bool m : marked) {
      if (!m) return false;
    }
    return true;
  }
};

struct SimNode {
  std::map<std::string, SimObject> objects;   // by key (one namespace in these tests)
};

SimObject Sealed(std::vector<uint8_t> bytes) {
  SimObject o;
  o.chunk = static_cast<uint32_t>(std::max<size_t>(bytes.size(), 1));
  o.bytes = std::move(bytes);
  o.marked.assign(1, true);
  return o;
}

proto::ObjectRef Ref(const std::string& key) {
  proto::ObjectRef r;
  r.set_ns("t");
  r.set_key(key);
  return r;
}

struct Outcome {
  std::string error;               // empty: every program ran to its end
  std::vector<SimNode> nodes;
};

// Runs `programs` (rank order; node ids 1..n) on nodes that hold `inputs` (key "in<r>").
Outcome Simulate(const std::vector<proto::CollectiveProgram>& programs, const std::vector<std::vector<uint8_t>>& inputs) {
  const size_t n = programs.size();
  Outcome out;
  out.nodes.resize(n);
  for (size_t r = 0; r < n; ++r) out.nodes[r].objects[absl::StrCat("in", r)] = Sealed(inputs[r]);
  auto fail = [&](const std::string& why) {
    out.error = why;
    return out;
  };
  for (size_t r = 0; r < n; ++r) {
    if (absl::Status s = dataplane::ProgramHandler::Check(programs[r]); !s.ok()) {
      return fail(absl::StrCat("rank ", r, ": ", s.message()));
    }
    SimNode& node = out.nodes[r];
    for (const proto::ProgramObject& o : programs[r].objects()) {
      SimObject obj;
      obj.bytes.assign(o.meta().size(), 0xEE);
      obj.chunk = o.chunk_size();
      obj.marked.assign(dataplane::ChunkProgress(o.meta().size(), o.chunk_size()).num_chunks(), false);
      if (o.has_init_from()) {
        auto in = node.objects.find(o.init_from().key());
        if (in == node.objects.end()) return fail(absl::StrCat("rank ", r, ": no input ", o.init_from().key()));
        if (o.init_src_offset() + o.init_len() > in->second.bytes.size()) return fail("init past the input");
        std::memcpy(obj.bytes.data() + o.init_dst_offset(), in->second.bytes.data() + o.init_src_offset(), o.init_len());
      }
      for (uint32_t k = o.ready_first(); k < o.ready_end(); ++k) obj.marked[k] = true;
      if (!node.objects.emplace(o.ref().key(), std::move(obj)).second) return fail("an object created twice");
    }
  }
  std::vector<int> step(n, 0);        // the step each rank runs
  std::vector<uint32_t> next(n, 0);   // the next chunk of that step
  std::vector<bool> done(n, false);
  for (int round = 0; round < 1'000'000; ++round) {
    bool progress = false;
    bool all_done = true;
    for (size_t r = 0; r < n; ++r) {
      if (done[r]) continue;
      all_done = false;
      const proto::CollectiveProgram& p = programs[r];
      SimNode& node = out.nodes[r];
      if (step[r] == p.steps_size()) {
        for (const proto::ObjectRef& ref : p.publish()) {
          if (!node.objects[ref.key()].all_marked()) return fail(absl::StrCat("rank ", r, " publishes an incomplete ", ref.key()));
        }
        done[r] = true;
        progress = true;
        continue;
      }
      const proto::ProgramStep& s = p.steps(step[r]);
      if (next[r] < s.first_chunk()) next[r] = s.first_chunk();
      SimObject& dst = node.objects[s.dst().key()];
      const dataplane::ChunkProgress dshape(dst.bytes.size(), dst.chunk);
      // One chunk per rank per round: the ranks advance together, as a pipeline would.
      const uint32_t k = next[r];
      if (s.kind() == proto::ProgramStep::COPY) {
        const SimObject& src = node.objects[s.src().key()];
        const dataplane::ChunkProgress sshape(src.bytes.size(), src.chunk);
        if (!src.marked[k]) return fail(absl::StrCat("rank ", r, " copies chunk ", k, " before it is complete"));
        const uint32_t d = s.dst_first_chunk() + (k - s.first_chunk());
        if (dst.marked[d]) return fail(absl::StrCat("rank ", r, " rewrites chunk ", d, " of ", s.dst().key()));
        const auto [from, len] = sshape.ChunkRange(k);
        const auto [to, dlen] = dshape.ChunkRange(d);
        if (len != dlen) return fail("a copy between chunks of different lengths");
        std::memcpy(dst.bytes.data() + to, src.bytes.data() + from, len);
        dst.marked[d] = true;
      } else {
        if (s.peer() < 1 || s.peer() > n) return fail("a pull from a node outside the group");
        SimNode& peer = out.nodes[s.peer() - 1];
        auto it = peer.objects.find(s.src().key());
        if (it == peer.objects.end()) return fail(absl::StrCat("rank ", r, " pulls ", s.src().key(), ", absent at the peer"));
        const SimObject& src = it->second;
        if (src.bytes.size() != dst.bytes.size() || src.chunk != dst.chunk) {
          return fail(absl::StrCat("rank ", r, " pulls ", s.src().key(), " of another size or chunking"));
        }
        if (!src.marked[k]) continue;   // held at the peer until it lands there
        if (dst.marked[k]) return fail(absl::StrCat("rank ", r, " rewrites chunk ", k, " of ", s.dst().key()));
        const auto [off, len] = dshape.ChunkRange(k);
        if (s.kind() == proto::ProgramStep::PULL) {
          std::memcpy(dst.bytes.data() + off, src.bytes.data() + off, len);
        } else {
          absl::Status st = ReduceInto(static_cast<ReduceOp>(p.op()), static_cast<DType>(p.dtype()),
                                       dst.bytes.data() + off, src.bytes.data() + off, len);
          if (!st.ok()) return fail(std::string(st.message()));
        }
        dst.marked[k] = true;
      }
      progress = true;
      if (++next[r] == s.end_chunk()) {
        ++step[r];
        next[r] = 0;
      }
    }
    if (all_done) return out;
    if (!progress) return fail("deadlock: no rank can go on");
  }
  return fail("too many rounds");
}

// Element-wise reference over all inputs, in rank order.
std::vector<uint8_t> Reference(proto::ReduceOp op, proto::DType dtype, const std::vector<std::vector<uint8_t>>& inputs) {
  std::vector<uint8_t> acc = inputs[0];
  for (size_t r = 1; r < inputs.size(); ++r) {
    EXPECT_TRUE(ReduceInto(static_cast<ReduceOp>(op), static_cast<DType>(dtype), acc.data(), inputs[r].data(), acc.size()).ok());
  }
  return acc;
}

uint32_t Width(proto::DType d) { return static_cast<uint32_t>(DTypeSize(static_cast<DType>(d))); }

// Inputs whose reduction is exact in any order: small integers (floats too: their sums,
// products of few factors, minima and maxima are exact).
std::vector<std::vector<uint8_t>> Inputs(size_t n, uint64_t bytes, proto::DType dtype, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<uint8_t>> in(n, std::vector<uint8_t>(bytes));
  const uint32_t w = Width(dtype);
  for (auto& v : in) {
    for (uint64_t i = 0; i + w <= bytes; i += w) {
      const int x = static_cast<int>(rng() % 7) - 3;
      switch (dtype) {
        case proto::F32: { float f = static_cast<float>(x); std::memcpy(&v[i], &f, 4); break; }
        case proto::F64: { double f = x; std::memcpy(&v[i], &f, 8); break; }
        case proto::I32: { int32_t f = x * 1000003; std::memcpy(&v[i], &f, 4); break; }
        case proto::I64: { int64_t f = int64_t{x} << 40; std::memcpy(&v[i], &f, 8); break; }
        default: v[i] = static_cast<uint8_t>(rng()); break;   // u8, bytes: any value (wraps)
      }
    }
  }
  return in;
}

GroupProgramSpec Spec(proto::GroupCollectiveKind kind, size_t n, uint64_t bytes, proto::DType dtype, uint32_t max_chunk) {
  GroupProgramSpec spec;
  spec.kind = kind;
  spec.op_id = 42;
  for (size_t r = 0; r < n; ++r) {
    spec.ranks.push_back(GroupRank{static_cast<NodeId>(r + 1), absl::StrCat("addr", r)});
    spec.inputs.push_back(Ref(absl::StrCat("in", r)));
  }
  spec.input.set_size(bytes);
  spec.input.set_dtype(dtype);
  spec.input.set_count(bytes / Width(dtype));
  spec.result = Ref("out");
  spec.dtype = dtype;
  spec.deadline_unix_ms = 1;
  spec.result_incarnation = 7;
  spec.max_chunk = max_chunk;
  return spec;
}

struct Case {
  proto::GroupCollectiveKind kind;
  proto::ReduceOp op;
  proto::DType dtype;
};

void RunCase(const Case& c, size_t n, uint64_t bytes, uint32_t max_chunk, uint32_t root) {
  SCOPED_TRACE(absl::StrCat("kind ", proto::GroupCollectiveKind_Name(c.kind), " op ", proto::ReduceOp_Name(c.op),
                            " dtype ", proto::DType_Name(c.dtype), " n ", n, " bytes ", bytes, " max_chunk ", max_chunk,
                            " root ", root));
  GroupProgramSpec spec = Spec(c.kind, n, bytes, c.dtype, max_chunk);
  spec.op = c.op;
  spec.root = root;
  absl::StatusOr<GroupPrograms> compiled = CompileGroupPrograms(spec);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  ASSERT_EQ(compiled->programs.size(), n);
  const auto inputs = Inputs(n, bytes, c.dtype, static_cast<uint32_t>(n * 1000 + bytes));
  Outcome o = Simulate(compiled->programs, inputs);
  ASSERT_EQ(o.error, "");
  const std::string scratch = GroupScratchKey(spec.op_id);
  for (size_t r = 0; r < n; ++r) {
    std::vector<uint8_t> want;
    switch (c.kind) {
      case proto::GROUP_ALLREDUCE: want = Reference(c.op, c.dtype, inputs); break;
      case proto::GROUP_REDUCE_SCATTER: {
        const std::vector<uint8_t> all = Reference(c.op, c.dtype, inputs);
        const uint64_t block = bytes / n;
        want.assign(all.begin() + static_cast<ptrdiff_t>(r * block), all.begin() + static_cast<ptrdiff_t>((r + 1) * block));
        break;
      }
      case proto::GROUP_ALLGATHER:
        for (const auto& in : inputs) want.insert(want.end(), in.begin(), in.end());
        break;
      case proto::GROUP_BROADCAST: want = inputs[root]; break;
      case proto::GROUP_REDUCE:
        if (r == root) want = Reference(c.op, c.dtype, inputs);
        break;
      default: FAIL();
    }
    auto it = o.nodes[r].objects.find("out");
    if (want.empty()) {
      EXPECT_EQ(it, o.nodes[r].objects.end()) << "rank " << r << " got a result it should not";
      EXPECT_EQ(compiled->result_meta[r].size(), 0u);
      continue;
    }
    ASSERT_NE(it, o.nodes[r].objects.end()) << "rank " << r;
    EXPECT_TRUE(it->second.all_marked()) << "rank " << r;
    EXPECT_EQ(it->second.bytes, want) << "rank " << r;
    EXPECT_EQ(compiled->result_meta[r].size(), want.size());
    EXPECT_EQ(compiled->result_meta[r].incarnation(), 7u);
    // The result is published; scratch is not.
    bool published = false;
    for (const proto::ObjectRef& ref : compiled->programs[r].publish()) {
      EXPECT_NE(ref.key(), scratch);
      published |= ref.key() == "out";
    }
    EXPECT_TRUE(published) << "rank " << r;
  }
}

TEST(GroupProgramsTest, AllReduceEveryOpAndDtypeOnTwoToEightRanks) {
  const std::vector<proto::DType> dtypes = {proto::F32, proto::F64, proto::I32, proto::I64, proto::U8};
  const std::vector<proto::ReduceOp> ops = {proto::SUM, proto::PROD, proto::MIN, proto::MAX};
  for (size_t n = 2; n <= 8; ++n) {
    for (proto::DType d : dtypes) {
      for (proto::ReduceOp op : ops) {
        const uint32_t w = Width(d);
        const uint32_t chunk = 64;   // small chunks: many per segment
        // One element, chunk-1 and chunk+1 bytes (whole elements), and several chunks a rank.
        for (uint64_t bytes : {uint64_t{w}, uint64_t{chunk - w}, uint64_t{chunk + w}, uint64_t{w} * 37 * n + w}) {
          RunCase({proto::GROUP_ALLREDUCE, op, d}, n, bytes, chunk, 0);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(GroupProgramsTest, AllReduceWithLargeChunks) {
  for (size_t n : {2, 3, 8}) RunCase({proto::GROUP_ALLREDUCE, proto::SUM, proto::F32}, n, 3 << 20, 1 << 20, 0);
}

TEST(GroupProgramsTest, ReduceScatterEveryOp) {
  for (size_t n = 2; n <= 8; ++n) {
    for (proto::ReduceOp op : {proto::SUM, proto::PROD, proto::MIN, proto::MAX}) {
      for (proto::DType d : {proto::F32, proto::I64, proto::U8}) {
        const uint32_t w = Width(d);
        for (uint64_t per : {uint64_t{1}, uint64_t{5}, uint64_t{48}}) {
          RunCase({proto::GROUP_REDUCE_SCATTER, op, d}, n, per * w * n, 64, 0);
          if (HasFatalFailure()) return;
        }
      }
    }
  }
}

TEST(GroupProgramsTest, AllGatherBroadcastAndReduceFromEveryRoot) {
  for (size_t n = 2; n <= 8; ++n) {
    for (uint64_t bytes : {uint64_t{4}, uint64_t{60}, uint64_t{68}, uint64_t{4000}}) {
      RunCase({proto::GROUP_ALLGATHER, proto::SUM, proto::F32}, n, bytes, 64, 0);
      for (uint32_t root = 0; root < n; ++root) {
        RunCase({proto::GROUP_BROADCAST, proto::SUM, proto::BYTES}, n, bytes + 1, 64, root);
        RunCase({proto::GROUP_REDUCE, proto::MAX, proto::I32}, n, bytes, 64, root);
        RunCase({proto::GROUP_REDUCE, proto::SUM, proto::F32}, n, bytes, 64, root);
        if (HasFatalFailure()) return;
      }
    }
  }
}

TEST(GroupProgramsTest, AllReduceReceivesTwoNMinusOneOverNOfTheObject) {
  // The bandwidth-optimal ring: each rank pulls (N-1)/N of the object twice.
  const size_t n = 8;
  const uint64_t bytes = 64ull << 20;
  absl::StatusOr<GroupPrograms> c = CompileGroupPrograms(Spec(proto::GROUP_ALLREDUCE, n, bytes, proto::F32, 1 << 20));
  ASSERT_TRUE(c.ok()) << c.status();
  for (const proto::CollectiveProgram& p : c->programs) {
    uint64_t pulled = 0;
    for (const proto::ProgramStep& s : p.steps()) {
      if (s.kind() == proto::ProgramStep::COPY) continue;
      const proto::ProgramObject& o = p.objects(0);
      const dataplane::ChunkProgress shape(o.meta().size(), o.chunk_size());
      for (uint32_t k = s.first_chunk(); k < s.end_chunk(); ++k) pulled += shape.ChunkRange(k).second;
    }
    EXPECT_NEAR(static_cast<double>(pulled), 2.0 * (n - 1) / n * bytes, 2.0 * (1 << 20));
    ASSERT_EQ(p.peers_size(), 1);
  }
}

TEST(GroupProgramsTest, RefusesWhatItCannotDo) {
  GroupProgramSpec spec = Spec(proto::GROUP_REDUCE_SCATTER, 3, 40, proto::F32, 64);   // 10 elements over 3
  absl::StatusOr<GroupPrograms> c = CompileGroupPrograms(spec);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(c.status().message().find("multiple of"), std::string::npos) << c.status();

  spec = Spec(proto::GROUP_ALLREDUCE, 3, 40, proto::BYTES, 64);
  EXPECT_EQ(CompileGroupPrograms(spec).status().code(), absl::StatusCode::kInvalidArgument);

  spec = Spec(proto::GROUP_ALLREDUCE, 1, 40, proto::F32, 64);
  EXPECT_EQ(CompileGroupPrograms(spec).status().code(), absl::StatusCode::kInvalidArgument);

  spec = Spec(proto::GROUP_BROADCAST, 3, 40, proto::F32, 64);
  spec.root = 3;
  EXPECT_EQ(CompileGroupPrograms(spec).status().code(), absl::StatusCode::kInvalidArgument);

  spec = Spec(proto::GROUP_ALLREDUCE, 3, 42, proto::F32, 64);   // not whole elements
  EXPECT_EQ(CompileGroupPrograms(spec).status().code(), absl::StatusCode::kInvalidArgument);

  spec = Spec(proto::GROUP_COLLECTIVE_UNSPECIFIED, 3, 40, proto::F32, 64);
  EXPECT_EQ(CompileGroupPrograms(spec).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GroupProgramsTest, BlockChunkDividesTheBlock) {
  EXPECT_EQ(BlockChunk(4096, 4, 1024), 1024u);
  EXPECT_EQ(BlockChunk(12, 4, 8), 4u);         // 3 elements: chunks of one
  EXPECT_EQ(BlockChunk(3000, 4, 1024), 1000u);  // 750 elements in 3 chunks of 250
  EXPECT_EQ(BlockChunk(0, 4, 1024), 0u);
  EXPECT_EQ(BlockChunk(6, 4, 1024), 0u);        // not whole elements
  // A prime element count: chunks of one element are the only divisor, far below 1/64 of the
  // largest chunk (too many chunks): none.
  EXPECT_EQ(BlockChunk(4 * 1000003, 4, 1 << 20), 0u);
  EXPECT_EQ(BlockChunk(4 * 1000003, 4, 64), 4u);   // within 64x of the largest: one element
}

// ferryd's check on programs from the wire: what a compiled program never holds is refused.
TEST(ProgramCheckTest, RefusesMalformedPrograms) {
  absl::StatusOr<GroupPrograms> c = CompileGroupPrograms(Spec(proto::GROUP_ALLREDUCE, 3, 4096, proto::F32, 1024));
  ASSERT_TRUE(c.ok());
  const proto::CollectiveProgram good = c->programs[1];
  ASSERT_TRUE(dataplane::ProgramHandler::Check(good).ok());
  auto refused = [](const proto::CollectiveProgram& p, const std::string& words) {
    absl::Status s = dataplane::ProgramHandler::Check(p);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(words), std::string::npos) << s;
  };
  proto::CollectiveProgram p = good;
  p.set_window(0);
  refused(p, "window");
  p = good;
  p.mutable_steps(0)->set_end_chunk(1000);
  refused(p, "do not fit");
  p = good;
  p.mutable_steps(0)->set_peer(99);
  refused(p, "not a peer");
  p = good;
  p.mutable_steps(0)->mutable_dst()->set_key("elsewhere");
  refused(p, "not an object");
  p = good;
  p.set_op(static_cast<proto::ReduceOp>(9));
  refused(p, "no arithmetic");
  p = good;
  p.set_dtype(proto::BYTES);
  refused(p, "no arithmetic");
  p = good;
  *p.add_objects() = p.objects(0);
  refused(p, "twice");
  p = good;
  p.mutable_objects(0)->set_ready_end(100000);
  refused(p, "ready chunks");
  p = good;
  p.mutable_objects(0)->set_init_len(1 << 30);
  refused(p, "do not fit");
  p = good;
  p.mutable_objects(0)->mutable_ref()->set_ns("bad ns!");
  refused(p, "");
  p = good;
  p.mutable_publish(0)->set_key("nothing");
  refused(p, "publishes");
  p = good;
  p.clear_objects();
  refused(p, "objects");
  p = good;
  for (int i = 0; i < 9; ++i) *p.add_peers() = p.peers(0);
  refused(p, "peers");
}

}  // namespace
}  // namespace ferry::control
