// mpi-coll: Open MPI baseline sweeps for MPI_Bcast, MPI_Reduce and MPI_Allreduce (f32 sum),
// nccl-tests style. One rank per node; launched by perf/baselines/run-baselines (or mpirun).
// The algorithm is whatever Open MPI picks under the given MCA parameters: pass
// --system mpi-tuned when running with coll_tuned dynamic rules so the JSON says so.
#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "perf/baselines/coll_common.h"

namespace ferry::perf {
namespace {

void Check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  std::fprintf(stderr, "mpi-coll: %s failed: %.*s\n", what, len, msg);
  MPI_Abort(MPI_COMM_WORLD, 3);
}

Comm MakeComm() {
  Comm comm;
  MPI_Comm_rank(MPI_COMM_WORLD, &comm.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &comm.size);
  comm.barrier = [] { Check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); };
  comm.max_in_place = [](std::vector<double>& v) {
    Check(MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_MAX,
                        MPI_COMM_WORLD),
          "MPI_Allreduce(max)");
  };
  comm.sum = [](uint64_t x) {
    unsigned long long in = x, out = 0;
    Check(MPI_Allreduce(&in, &out, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, MPI_COMM_WORLD),
          "MPI_Allreduce(sum)");
    return static_cast<uint64_t>(out);
  };
  return comm;
}

// Buffers shared by the three cases; (re)allocated by prepare(), untimed.
struct Buffers {
  std::vector<float> a;  // broadcast buffer / reduce+allreduce input (allreduce in place)
  std::vector<float> b;  // reduce output
  void Resize(size_t count, bool second) {
    a.assign(count, 0.0f);  // touches every page: no first-touch inside the timed region
    b.assign(second ? count : 0, 0.0f);
  }
};

CollCase MakeCase(const std::string& coll, const std::string& system, const Comm& comm,
                  const SweepOptions& o, Buffers* buf) {
  CollCase c;
  c.system = system;
  c.coll = coll;
  c.algo = "MPI_" + std::string(coll == "broadcast" ? "Bcast"
                                : coll == "reduce"  ? "Reduce"
                                                    : "Allreduce");
  const int rank = comm.rank, nranks = comm.size, root = o.root;
  auto count = std::make_shared<size_t>(0);
  c.prepare = [buf, count, coll](size_t n) {
    *count = n;
    buf->Resize(n, coll == "reduce");
  };
  if (coll == "broadcast") {
    c.reset = [=] {
      if (rank == root) {
        FillInput(buf->a.data(), *count, rank);
      } else {
        FillSentinel(buf->a.data(), *count);
      }
    };
    c.run = [=] {
      Check(MPI_Bcast(buf->a.data(), static_cast<int>(*count), MPI_FLOAT, root, MPI_COMM_WORLD),
            "MPI_Bcast");
    };
    c.result = [=] { return buf->a.data(); };
    c.expect = [] { return Expect::kRootInput; };
  } else if (coll == "reduce") {
    c.reset = [=] {
      FillInput(buf->a.data(), *count, rank);
      FillSentinel(buf->b.data(), *count);
    };
    c.run = [=] {
      Check(MPI_Reduce(buf->a.data(), buf->b.data(), static_cast<int>(*count), MPI_FLOAT, MPI_SUM,
                       root, MPI_COMM_WORLD),
            "MPI_Reduce");
    };
    c.result = [=] { return buf->b.data(); };
    c.expect = [=] { return rank == root ? Expect::kSumOverRanks : Expect::kNothing; };
  } else {
    (void)nranks;
    c.reset = [=] { FillInput(buf->a.data(), *count, rank); };
    c.run = [=] {
      Check(MPI_Allreduce(MPI_IN_PLACE, buf->a.data(), static_cast<int>(*count), MPI_FLOAT,
                          MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    };
    c.result = [=] { return buf->a.data(); };
    c.expect = [] { return Expect::kSumOverRanks; };
  }
  return c;
}

int Main(int argc, char** argv) {
  Comm comm = MakeComm();
  CLI::App app{
      "mpi-coll: Open MPI collective sweeps (MPI_Bcast, MPI_Reduce, MPI_Allreduce; f32 sum),\n"
      "nccl-tests style. Run one rank per node under mpirun. Each iteration: barrier, time the\n"
      "collective, take the max over ranks; every result is verified element-wise.\n"
      "Output: a table plus one JSON line per size:\n"
      "  {\"system\":..,\"coll\":..,\"bytes\":..,\"nodes\":..,\"time_median_s\":..,"
      "\"time_p90_s\":..,\"errors\":..}"};
  SweepOptions o;
  std::string colls = "broadcast,reduce,allreduce";
  std::string system = "mpi-default";
  AddSweepOptions(app, &o);
  app.add_option("-c,--colls", colls, "comma-separated: broadcast,reduce,allreduce")
      ->capture_default_str();
  app.add_option("--system", system, "system label in the JSON lines (mpi-default, mpi-tuned)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = comm.rank == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
    return rc == 0 ? 0 : 2;
  }
  std::string why;
  if (!ValidateSweepOptions(o, comm.size, &why)) {
    if (comm.rank == 0) std::fprintf(stderr, "mpi-coll: %s\n", why.c_str());
    return 2;
  }
  std::vector<std::string> list;
  std::stringstream ss(colls);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item != "broadcast" && item != "reduce" && item != "allreduce") {
      if (comm.rank == 0) std::fprintf(stderr, "mpi-coll: unknown collective '%s'\n", item.c_str());
      return 2;
    }
    list.push_back(item);
  }
  if (comm.rank == 0) PrintTableHeader(stdout, system, comm.size);
  Buffers buf;
  uint64_t errors = 0;
  for (const auto& coll : list) {
    CollCase c = MakeCase(coll, system, comm, o, &buf);
    errors += RunSweep(comm, o, c);
  }
  if (comm.rank == 0) {
    std::printf("# %s: total errors %llu\n", system.c_str(), static_cast<unsigned long long>(errors));
  }
  return errors == 0 ? 0 : 1;
}

}  // namespace
}  // namespace ferry::perf

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rc = ferry::perf::Main(argc, argv);
  MPI_Finalize();
  return rc;
}
