// gloo-coll: Gloo baseline sweeps over its TCP transport (f32 sum), nccl-tests style.
// One process per node; ranks meet through a gloo FileStore in a directory all of them see.
// Algorithms (--algos):
//   tree              broadcast  gloo::broadcast (the library's own broadcast)
//   one_to_all        broadcast  gloo::BroadcastOneToAll (root sends to every rank)
//   reduce            reduce     gloo::reduce (ring reduce, 1 MiB segments)
//   ring_chunked      allreduce  gloo::AllreduceRingChunked
//   halving_doubling  allreduce  gloo::AllreduceHalvingDoubling
//   ring              allreduce  gloo::AllreduceRing
#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <gloo/allreduce_halving_doubling.h>
#include <gloo/allreduce_ring.h>
#include <gloo/allreduce_ring_chunked.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/broadcast_one_to_all.h>
#include <gloo/common/error.h>
#include <gloo/reduce.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include "perf/baselines/coll_common.h"

namespace ferry::perf {
namespace {

using Ctx = std::shared_ptr<gloo::Context>;

Comm MakeComm(const Ctx& ctx) {
  Comm comm;
  comm.rank = ctx->rank;
  comm.size = ctx->size;
  auto tag = std::make_shared<uint32_t>(1u << 20);
  comm.barrier = [ctx, tag] {
    gloo::BarrierOptions opts(ctx);
    opts.setTag((*tag)++);
    gloo::barrier(opts);
  };
  comm.max_in_place = [ctx](std::vector<double>& v) {
    if (ctx->size == 1 || v.empty()) return;
    gloo::AllreduceRing<double> ar(ctx, {v.data()}, static_cast<int>(v.size()),
                                   gloo::ReductionFunction<double>::max);
    ar.run();
  };
  comm.sum = [ctx](uint64_t x) {
    if (ctx->size == 1) return x;
    double d = static_cast<double>(x);  // exact below 2^53
    gloo::AllreduceRing<double> ar(ctx, {&d}, 1, gloo::ReductionFunction<double>::sum);
    ar.run();
    return static_cast<uint64_t>(d);
  };
  return comm;
}

void SumF32(void* c, const void* a, const void* b, size_t n) {
  auto* out = static_cast<float*>(c);
  const auto* x = static_cast<const float*>(a);
  const auto* y = static_cast<const float*>(b);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] + y[i];
}

struct State {
  std::vector<float> a, b;
  size_t count = 0;
  std::unique_ptr<gloo::Algorithm> algo;
  std::unique_ptr<gloo::BroadcastOptions> bcast;
  std::unique_ptr<gloo::ReduceOptions> reduce;
};

// Returns false for an unknown algorithm name.
bool MakeCase(const std::string& name, const Ctx& ctx, const SweepOptions& o, State* s,
              CollCase* c) {
  const int rank = ctx->rank, root = o.root;
  c->system = "gloo-" + name;
  c->algo = name;
  auto sized = [s](size_t n, bool second) {
    s->algo.reset();
    s->bcast.reset();
    s->reduce.reset();
    s->count = n;
    s->a.assign(n, 0.0f);  // touch every page now, not in the timed region
    s->b.assign(second ? n : 0, 0.0f);
  };
  auto fill_root_or_sentinel = [s, rank, root] {
    if (rank == root) {
      FillInput(s->a.data(), s->count, rank);
    } else {
      FillSentinel(s->a.data(), s->count);
    }
  };
  c->result = [s] { return s->a.data(); };
  if (name == "tree" || name == "one_to_all") {
    c->coll = "broadcast";
    c->algo = name == "tree" ? "gloo::broadcast" : "gloo::BroadcastOneToAll";
    const bool tree = name == "tree";
    c->prepare = [=](size_t n) {
      sized(n, false);
      if (n == 0) return;
      if (tree) {
        s->bcast = std::make_unique<gloo::BroadcastOptions>(ctx);
        s->bcast->setOutput(s->a.data(), n);
        s->bcast->setRoot(root);
        s->bcast->setTag(7);
      } else {
        s->algo = std::make_unique<gloo::BroadcastOneToAll<float>>(
            ctx, std::vector<float*>{s->a.data()}, static_cast<int>(n), root);
      }
    };
    c->reset = fill_root_or_sentinel;
    c->run = [s, tree] { tree ? gloo::broadcast(*s->bcast) : s->algo->run(); };
    c->expect = [] { return Expect::kRootInput; };
  } else if (name == "reduce") {
    c->coll = "reduce";
    c->algo = "gloo::reduce";
    c->prepare = [=](size_t n) {
      sized(n, true);
      if (n == 0) return;
      s->reduce = std::make_unique<gloo::ReduceOptions>(ctx);
      s->reduce->setInput(s->a.data(), n);
      s->reduce->setOutput(s->b.data(), n);
      s->reduce->setRoot(root);
      s->reduce->setReduceFunction(&SumF32);
      s->reduce->setTag(8);
    };
    c->reset = [s, rank] {
      FillInput(s->a.data(), s->count, rank);
      FillSentinel(s->b.data(), s->count);
    };
    c->run = [s] { gloo::reduce(*s->reduce); };
    c->result = [s] { return s->b.data(); };
    c->expect = [rank, root] { return rank == root ? Expect::kSumOverRanks : Expect::kNothing; };
  } else if (name == "ring_chunked" || name == "halving_doubling" || name == "ring") {
    c->coll = "allreduce";
    c->algo = name == "ring_chunked"       ? "gloo::AllreduceRingChunked"
              : name == "halving_doubling" ? "gloo::AllreduceHalvingDoubling"
                                           : "gloo::AllreduceRing";
    c->prepare = [=](size_t n) {
      sized(n, false);
      if (n == 0) return;
      std::vector<float*> ptrs{s->a.data()};
      const int cnt = static_cast<int>(n);
      if (name == "ring_chunked") {
        s->algo = std::make_unique<gloo::AllreduceRingChunked<float>>(ctx, ptrs, cnt);
      } else if (name == "halving_doubling") {
        s->algo = std::make_unique<gloo::AllreduceHalvingDoubling<float>>(ctx, ptrs, cnt);
      } else {
        s->algo = std::make_unique<gloo::AllreduceRing<float>>(ctx, ptrs, cnt);
      }
    };
    c->reset = [s, rank] { FillInput(s->a.data(), s->count, rank); };
    c->run = [s] { s->algo->run(); };
    c->expect = [] { return Expect::kSumOverRanks; };
  } else {
    return false;
  }
  return true;
}

int Main(int argc, char** argv) {
  CLI::App app{
      "gloo-coll: Gloo collective sweeps over TCP (f32 sum), nccl-tests style. Start one\n"
      "process per node with the same --size/--store-dir/--run-id and distinct --rank.\n"
      "Each iteration: barrier, time the collective, take the max over ranks; every result\n"
      "is verified element-wise. Output: a table plus one JSON line per size with\n"
      "\"system\":\"gloo-<algo>\". Algorithms: tree, one_to_all (broadcast), reduce (ring\n"
      "reduce), ring_chunked, halving_doubling, ring (allreduce)."};
  SweepOptions o;
  int rank = -1, size = 0, timeout_s = 600;
  std::string store_dir, run_id = "gloo-coll", hostname, iface;
  std::string algos = "tree,reduce,ring_chunked,halving_doubling";
  AddSweepOptions(app, &o);
  app.add_option("--rank", rank, "this process's rank")->required();
  app.add_option("--size", size, "number of ranks")->required();
  app.add_option("--store-dir", store_dir, "FileStore directory shared by all ranks")->required();
  app.add_option("--run-id", run_id, "key prefix in the store (distinct per run)")
      ->capture_default_str();
  app.add_option("--hostname", hostname, "address to bind/advertise (e.g. the node's eth0 IP)");
  app.add_option("--iface", iface, "interface to bind instead of --hostname (e.g. eth0)");
  app.add_option("-a,--algos", algos, "comma-separated algorithms")->capture_default_str();
  app.add_option("--timeout-s", timeout_s, "per-operation timeout (s)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::string why;
  if (rank < 0 || size < 1 || rank >= size) {
    why = "need 0 <= --rank < --size";
  } else if (hostname.empty() == iface.empty()) {
    why = "give exactly one of --hostname or --iface";
  } else {
    ValidateSweepOptions(o, size, &why);
  }
  if (!why.empty()) {
    std::fprintf(stderr, "gloo-coll: %s\n", why.c_str());
    return 2;
  }
  std::vector<std::string> names;
  std::stringstream ss(algos);
  for (std::string item; std::getline(ss, item, ',');) names.push_back(item);

  gloo::transport::tcp::attr attr;
  if (!hostname.empty()) attr.hostname = hostname;
  if (!iface.empty()) attr.iface = iface;
  auto dev = gloo::transport::tcp::CreateDevice(attr);
  gloo::rendezvous::FileStore file_store(store_dir);
  gloo::rendezvous::PrefixStore store(run_id, file_store);
  auto rctx = std::make_shared<gloo::rendezvous::Context>(rank, size);
  rctx->setTimeout(std::chrono::seconds(timeout_s));
  rctx->connectFullMesh(store, dev);
  Ctx ctx = rctx;
  Comm comm = MakeComm(ctx);

  if (rank == 0) PrintTableHeader(stdout, "gloo (" + algos + ")", size);
  uint64_t errors = 0;
  State state;
  for (const auto& name : names) {
    CollCase c;
    if (!MakeCase(name, ctx, o, &state, &c)) {
      if (rank == 0) std::fprintf(stderr, "gloo-coll: unknown algorithm '%s'\n", name.c_str());
      return 2;
    }
    errors += RunSweep(comm, o, c);
  }
  if (rank == 0) {
    std::printf("# gloo: total errors %llu\n", static_cast<unsigned long long>(errors));
  }
  comm.barrier();  // nobody tears down its pairs while another rank still needs them
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ferry::perf

int main(int argc, char** argv) {
  try {
    return ferry::perf::Main(argc, argv);
  } catch (const gloo::Exception& e) {
    std::fprintf(stderr, "gloo-coll: gloo error: %s\n", e.what());
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gloo-coll: error: %s\n", e.what());
    return 3;
  }
}
