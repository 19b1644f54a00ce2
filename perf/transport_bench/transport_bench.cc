// ferry-transport-bench: point-to-point bandwidth of the UCX transport between two processes,
// Fetch (active message, rendezvous into the destination) against Read (ucp_get_nbx), with a
// window of chunks in flight. Every iteration is verified word by word against the source
// pattern (the "errors" column); memory is pre-touched and registered before timing.
//
//   ferry-transport-bench [--sizes 1MiB,...,1GiB] [--chunk 1MiB] [--window 8] [--iters N]
//                         [--methods fetch,read] [--json out.json]
// spawns a server process (this binary with --role server) and drives it as the client.
// Environment: UCX_TLS / UCX_NET_DEVICES select the fabric (e.g. UCX_TLS=tcp UCX_NET_DEVICES=lo).
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/synchronization/notification.h"
#include "common/process.h"
#include "dataplane/ucx/ucx_transport.h"
#include "nlohmann/json.hpp"
#include "perf/transport_bench/bench_util.h"

namespace ferry::perf {
namespace {

using dataplane::MemoryRegion;
using ferry::NodeId;
using dataplane::Transport;

constexpr NodeId kServer = 2, kClient = 1;

struct Options {
  std::string role = "client";
  std::string fds;
  std::vector<std::string> sizes = {"1MiB", "4MiB", "16MiB", "64MiB", "256MiB", "1GiB"};
  std::vector<std::string> methods = {"fetch", "read"};
  std::string chunk = "1MiB";
  int window = 8;
  int iters = 0;  // 0: automatic (about 2 GiB per size, 3..20 iterations)
  std::string json;
  bool busy_poll = false;
  bool cold_dst = false;
  std::string receive_copy = "ucx";
};

std::unique_ptr<Transport> MakeTransport(NodeId id, const Options& opts) {
  dataplane::UcxTransportOptions o;
  o.self = id;
  o.busy_poll = opts.busy_poll;
  auto copy = dataplane::ParseReceiveCopy(opts.receive_copy);
  if (!copy.ok()) Die(copy.status().ToString());
  o.receive_copy = *copy;
  auto t = dataplane::CreateUcxTransport(o);
  if (!t.ok()) Die("creating the UCX transport: " + t.status().ToString());
  return *std::move(t);
}

// ---- server -----------------------------------------------------------------------------

int RunServer(const Options& o, uint64_t max_size) {
  int rd = -1, wr = -1;
  if (sscanf(o.fds.c_str(), "%d,%d", &rd, &wr) != 2) Die("--fds r,w required for the server");
  auto t = MakeTransport(kServer, o);
  Arena src(max_size);
  FillWords(src.data(), max_size);
  auto region = t->RegisterMemory(dataplane::MemoryKind::kHost, src.data(), max_size);
  if (!region.ok()) Die(region.status().ToString());
  t->SetFetchHandler([&region](NodeId, std::string_view header,
                            std::unique_ptr<dataplane::FetchResponder> r) {
    RangeRequest req;
    if (header.size() != sizeof(req)) return r->Fail(absl::InvalidArgumentError("bad header"));
    std::memcpy(&req, header.data(), sizeof(req));
    r->Reply(region->Slice(req.offset, req.length), [](absl::Status) {});
  });
  WriteBlob(wr, t->LocalAddress());
  WriteBlob(wr, region->remote_key);
  std::string client = ReadBlob(rd);
  if (absl::Status st = t->AddPeer(kClient, client); !st.ok()) Die(st.ToString());
  WriteBlob(wr, "ready");
  ReadBlob(rd, /*allow_eof=*/true);  // serve until the client closes the pipe
  t->Shutdown();
  return 0;
}

// ---- client -----------------------------------------------------------------------------

struct Peer {
  std::string remote_key;   // the server's region (offsets are offsets into its source buffer)
};

// Moves `dst.length` bytes from the server into `dst` (a slice of a registered region) in
// chunks, `window` in flight. Returns seconds.
double TransferOnce(Transport& t, const Peer& peer, bool use_read, dataplane::LocalSlice dst,
                    uint64_t chunk, int window, std::atomic<uint64_t>& failures) {
  const uint64_t size = dst.length;
  struct State {
    uint64_t next = 0, done = 0, chunks = 0;
    absl::Notification finished;
  };
  auto state = std::make_shared<State>();
  state->chunks = (size + chunk - 1) / chunk;
  // Posts the next chunk; runs on the caller first, then from completions (progress thread).
  std::function<void()> post = [&, state]() {
    uint64_t i = state->next++;
    uint64_t off = i * chunk, len = std::min(chunk, size - off);
    auto done = [&, state](absl::Status st) {
      if (!st.ok() && failures.fetch_add(1) == 0) {
        std::fprintf(stderr, "transfer failed: %s\n", st.ToString().c_str());
      }
      if (++state->done == state->chunks) return state->finished.Notify();
      if (state->next < state->chunks) post();
    };
    if (use_read) {
      t.Read(kServer, dataplane::RemoteSlice{peer.remote_key, off, len},
             dataplane::LocalSlice{dst.region, dst.offset + off, len}, done);
    } else {
      RangeRequest req{off, len};
      t.Fetch(kServer, std::string(reinterpret_cast<const char*>(&req), sizeof(req)),
              dataplane::LocalSlice{dst.region, dst.offset + off, len}, done);
    }
  };
  auto start = std::chrono::steady_clock::now();
  // The first `window` posts race with completions running on the progress thread; posting
  // them from one queued batch keeps `state` single-threaded.
  t.SendControl(kServer, "", [&, state](absl::Status) {
    for (int w = 0; w < window && state->next < state->chunks; ++w) post();
  });
  state->finished.WaitForNotification();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int RunClient(const Options& o, const std::vector<uint64_t>& sizes, uint64_t chunk) {
  uint64_t max_size = *std::max_element(sizes.begin(), sizes.end());
  ServerProcess server = SpawnServer(o);
  auto t = MakeTransport(kClient, o);
  // --cold-dst: each iteration lands in the next part of a 1 GiB buffer, untouched since the
  // previous pass over it (as a store's fresh objects are); otherwise one buffer, in cache.
  const uint64_t dst_len = o.cold_dst ? std::max<uint64_t>(max_size, 1ull << 30) : max_size;
  Arena dst(dst_len);
  auto dst_region = t->RegisterMemory(dataplane::MemoryKind::kHost, dst.data(), dst_len);
  if (!dst_region.ok()) Die(dst_region.status().ToString());
  Peer peer;
  std::string address = ReadBlob(server.rd);
  peer.remote_key = ReadBlob(server.rd);
  if (absl::Status st = t->AddPeer(kServer, address); !st.ok()) Die(st.ToString());
  WriteBlob(server.wr, t->LocalAddress());
  ReadBlob(server.rd);  // ready

  nlohmann::json results = nlohmann::json::array();
  std::printf("# ferry-transport-bench: UCX_TLS=%s UCX_NET_DEVICES=%s chunk=%" PRIu64
              " window=%d\n",
              Env("UCX_TLS").c_str(), Env("UCX_NET_DEVICES").c_str(), chunk, o.window);
  std::printf("%12s %8s %6s %10s %10s %10s %10s %7s\n", "size", "method", "iters", "time(us)",
              "min(us)", "algbw", "busbw", "errors");
  std::printf("%12s %8s %6s %10s %10s %10s %10s %7s\n", "(B)", "", "", "median", "", "(MB/s)",
              "(MB/s)", "");
  for (uint64_t size : sizes) {
    int iters = o.iters > 0 ? o.iters
                            : static_cast<int>(std::clamp<uint64_t>((2ull << 30) / size, 3, 20));
    for (const std::string& method : o.methods) {
      bool use_read = method == "read";
      std::atomic<uint64_t> failures{0};
      std::vector<double> times;
      uint64_t errors = 0;
      for (int it = -1; it < iters; ++it) {  // iteration -1 warms up (connection, rkey)
        uint8_t* d = dst.data();
        if (o.cold_dst) {
          d += (static_cast<uint64_t>(it + 1) * size) % (dst_len - size + 1) / 4096 * 4096;
        } else {
          std::memset(d, 0, size);   // stale bytes must not pass verification
        }
        double s = TransferOnce(*t, peer, use_read, dst_region->Slice(d - dst.data(), size), chunk, o.window,
                                failures);
        uint64_t bad = CountBadWords(d, size);
        errors += bad;
        if (o.cold_dst) std::memset(d, 0, size);   // zeroed long before the next pass here
        if (it >= 0) times.push_back(s);
      }
      errors += failures.load();
      Row row = Summarise(size, method, times, errors);
      PrintRow(row);
      nlohmann::json j = ToJson(row, chunk, o.window);
      j["cold_dst"] = o.cold_dst;
      j["receive_copy"] = o.receive_copy;
      results.push_back(std::move(j));
    }
  }
  if (!o.json.empty()) {
    std::ofstream(o.json) << results.dump(2) << "\n";
  } else {
    std::printf("%s\n", results.dump().c_str());
  }
  t->Shutdown();
  server.Stop();
  return 0;
}

}  // namespace
}  // namespace ferry::perf

int main(int argc, char** argv) {
  ferry::DisableMutexDeadlockDetection();
  ferry::perf::Options o;
  CLI::App app{"ferry-transport-bench: UCX transport bandwidth, Fetch vs Read, two processes"};
  app.add_option("--role", o.role, "client (default; spawns the server) or server (internal)");
  app.add_option("--fds", o.fds, "server only: pipe fds r,w (internal)");
  app.add_option("--sizes", o.sizes, "transfer sizes")->delimiter(',');
  app.add_option("--methods", o.methods, "fetch and/or read")->delimiter(',');
  app.add_option("--chunk", o.chunk, "chunk size");
  app.add_option("--window", o.window, "chunks in flight");
  app.add_option("--iters", o.iters, "timed iterations per size (0: automatic)");
  app.add_option("--json", o.json, "write results as JSON to this file");
  app.add_flag("--busy-poll", o.busy_poll, "spin on the worker instead of sleeping");
  app.add_flag("--cold-dst", o.cold_dst,
               "land each transfer in a part of a 1 GiB buffer not touched since the previous pass "
               "(as fresh objects in a store); default: one buffer, reused (cache-hot)");
  app.add_option("--receive-copy", o.receive_copy, "ucx|streaming (UcxTransportOptions)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  std::vector<uint64_t> sizes;
  for (const auto& s : o.sizes) sizes.push_back(ferry::perf::ParseBytes(s));
  uint64_t chunk = ferry::perf::ParseBytes(o.chunk);
  if (chunk == 0 || chunk % 8 != 0 || o.window < 1) ferry::perf::Die("bad --chunk or --window");
  for (uint64_t s : sizes) {
    if (s == 0 || s % 8 != 0) ferry::perf::Die("sizes must be positive multiples of 8");
  }
  if (o.role == "server") {
    return ferry::perf::RunServer(o, *std::max_element(sizes.begin(), sizes.end()));
  }
  return ferry::perf::RunClient(o, sizes, chunk);
}
