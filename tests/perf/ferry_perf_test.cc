// ferry-perf: its pure helpers, and the binary end to end on a real 3-node loopback cluster.
// The end-to-end check must have teeth: a clean sweep reports errors == 0 on every row and
// exits 0; with --corrupt-node 1 every row reports errors > 0 and the exit code is non-zero.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "perf/ferry_perf/pattern.h"
#include "perf/ferry_perf/sweep.h"
#include "tests/integration/local_cluster.h"

namespace ferry::perf {
namespace {

TEST(FerryPerfSweep, ParsesSizes) {
  EXPECT_EQ(ParseBytes("4096"), 4096u);
  EXPECT_EQ(ParseBytes("1K"), 1024u);
  EXPECT_EQ(ParseBytes("64m"), 64u << 20);
  EXPECT_EQ(ParseBytes("1GiB"), 1u << 30);
  EXPECT_EQ(ParseBytes("2MB"), 2u << 20);
  EXPECT_FALSE(ParseBytes(""));
  EXPECT_FALSE(ParseBytes("K"));
  EXPECT_FALSE(ParseBytes("12Q"));
  EXPECT_FALSE(ParseBytes("99999999999999999999"));
  EXPECT_EQ(HumanBytes(64u << 20), "64M");
  EXPECT_EQ(HumanBytes(1000), "1000");
}

TEST(FerryPerfSweep, SizesAndIterations) {
  SweepPlan p;
  p.min_bytes = 1 << 10;
  p.max_bytes = 4 << 20;
  p.factor = 4;
  EXPECT_EQ(SweepSizes(p), (std::vector<uint64_t>{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10,
                                                  1 << 20, 4 << 20}));
  p.iters = 5;
  p.iter_bytes = 1ull << 30;
  EXPECT_EQ(ItersFor(p, 1 << 20), 5);
  EXPECT_EQ(ItersFor(p, 256 << 20), 4);
  EXPECT_EQ(ItersFor(p, 4ull << 30), 1);
  p.warmup = 2;
  EXPECT_EQ(WarmupFor(p, 1 << 30), 2);  // warmup_bytes off
  p.warmup_bytes = 16 << 20;
  EXPECT_EQ(WarmupFor(p, 64 << 20), 0);
}

TEST(FerryPerfSweep, RowStatistics) {
  EXPECT_DOUBLE_EQ(Quantile({3, 1, 2}, 0.5), 2);
  EXPECT_DOUBLE_EQ(Quantile({4, 1, 2, 3}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(Quantile({1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0.9), 9);
  RowStats r = ComputeRow({2.0, 1.0, 3.0}, 1000, 1.0, 1.0, 500.0);
  EXPECT_DOUBLE_EQ(r.median_s, 2.0);
  EXPECT_DOUBLE_EQ(r.algbw_Bps, 500.0);
  EXPECT_DOUBLE_EQ(r.bound_s, 2.0);
  EXPECT_DOUBLE_EQ(r.time_over_bound, 1.0);
  EXPECT_DOUBLE_EQ(ComputeRow({1.0}, 1000, 1.0, 1.0, 0.0).bound_s, 0.0);  // link unknown
}

TEST(FerryPerfPattern, CountsWrongWords) {
  const size_t n = (200 << 10) + 3;  // several compare blocks and a partial tail word
  std::vector<uint8_t> expected(n), actual(n);
  FillPattern(PatternSeed(n, 0), expected.data(), n);
  FillPattern(PatternSeed(n, 0), actual.data(), n);
  EXPECT_EQ(CountMismatchedWords(actual.data(), expected.data(), n), 0u);
  actual[0] ^= 1;
  actual[1] ^= 1;             // same word
  actual[100 << 10] ^= 0x80;  // another block
  actual[n - 1] ^= 1;         // the partial tail word
  EXPECT_EQ(CountMismatchedWords(actual.data(), expected.data(), n), 3u);
  // Another iteration's object differs almost everywhere.
  FillPattern(PatternSeed(n, 1), actual.data(), n);
  EXPECT_GT(CountMismatchedWords(actual.data(), expected.data(), n), WordsIn(n) - 8);
}

// Runs `argv` with output to `log`; returns the exit code (-1 on a signal or after 60 s).
int RunProcess(const std::vector<std::string>& argv, const std::string& log) {
  const pid_t pid = testing::LocalCluster::Spawn(argv, log);
  int status = 0;
  for (int t = 0; t < 600; ++t) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class FerryPerfBinaryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::ClusterOptions o;
    o.nodes = 3;
    o.arena = "64MiB";
    cluster_ = std::make_unique<testing::LocalCluster>(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }

  // Runs ferry-perf over the cluster; returns its exit code, fills *rows from --json.
  int RunPerf(const std::string& tag, const std::vector<std::string>& extra,
              std::vector<nlohmann::json>* rows,
              const std::string& colls = "p2p,p2p-stream,broadcast,broadcast-get") {
    const std::string json = cluster_->dir() + "/" + tag + ".jsonl";
    log_ = cluster_->dir() + "/" + tag + ".log";
    std::vector<std::string> argv = {
        testing::LocalCluster::Bin("ferry-perf"),
        "--sockets",
        cluster_->socket(0) + "," + cluster_->socket(1) + "," + cluster_->socket(2),
        "--coll",
        colls,
        "--min-bytes",
        "1K",
        "--factor",
        "4",
        "--warmup",
        "1",
        "--link-Bps",
        "1e9",
        "--timeout",
        "20s",
        "--json",
        json};
    argv.insert(argv.end(), extra.begin(), extra.end());
    const int rc = RunProcess(argv, log_);
    *rows = ReadJsonLines(json);
    return rc;
  }

  std::unique_ptr<testing::LocalCluster> cluster_;
  std::string log_;
};

TEST_F(FerryPerfBinaryTest, CleanSweepHasNoErrorsAndCorruptionIsCaught) {
  std::vector<nlohmann::json> rows;
  ASSERT_EQ(RunPerf("clean", {"--max-bytes", "4M", "--iters", "2"}, &rows), 0) << ReadFile(log_);
  ASSERT_EQ(rows.size(), 4u * 7u) << ReadFile(log_);
  std::set<std::string> colls;
  for (const nlohmann::json& r : rows) {
    colls.insert(r["coll"].get<std::string>());
    EXPECT_EQ(r["system"], "ferry");
    EXPECT_EQ(r["nodes"], 3);
    EXPECT_EQ(r["errors"], 0) << r.dump();
    EXPECT_EQ(r["iters"], 2) << r.dump();
    EXPECT_GT(r["time_median_s"].get<double>(), 0) << r.dump();
    EXPECT_GT(r["bound_s"].get<double>(), 0) << r.dump();
    EXPECT_GE(r["time_p90_s"].get<double>(), r["time_median_s"].get<double>()) << r.dump();
  }
  EXPECT_EQ(colls, (std::set<std::string>{"p2p", "p2p-stream", "broadcast", "broadcast-get"}));
  EXPECT_NE(ReadFile(log_).find("total errors: 0"), std::string::npos);

  // Node 1 receives in all four collectives: every row must report its wrong word.
  ASSERT_NE(
      RunPerf("corrupt", {"--max-bytes", "256K", "--iters", "1", "--corrupt-node", "1"}, &rows), 0)
      << ReadFile(log_);
  ASSERT_EQ(rows.size(), 4u * 5u) << ReadFile(log_);
  for (const nlohmann::json& r : rows) EXPECT_GT(r["errors"].get<uint64_t>(), 0u) << r.dump();

  // A bad flag is a usage error (exit 2) that names the flag, before anything runs.
  EXPECT_EQ(RunPerf("bad-warmup", {"--cluster-warmup", "lots"}, &rows), 2);
  EXPECT_TRUE(rows.empty());
  EXPECT_NE(ReadFile(log_).find("bad --cluster-warmup 'lots'"), std::string::npos) << ReadFile(log_);
  EXPECT_EQ(RunPerf("bad-inflight", {"--stream-inflight", "0"}, &rows), 2);
  EXPECT_TRUE(rows.empty());
  EXPECT_NE(ReadFile(log_).find("--stream-inflight must be between 1 and 16"), std::string::npos)
      << ReadFile(log_);
}

// The weight-sync rows: one row per collective for the whole model, every tensor of every
// receiver checked (clean: 0 errors; node 2's tensor 0 treated as wrong: errors > 0, exit 1).
TEST_F(FerryPerfBinaryTest, ModelSyncRowsVerifyEveryTensorOnEveryReceiver) {
  const std::vector<std::string> args = {"--model", "small", "--iters", "1",  // RunPerf: --warmup 1
                                         "--inflight", "8", "--join-stagger-ms", "20",
                                         "--cluster-warmup", "0"};
  std::vector<nlohmann::json> rows;
  ASSERT_EQ(RunPerf("model", args, &rows, "model-bcast,model-join"), 0) << ReadFile(log_);
  ASSERT_EQ(rows.size(), 2u) << ReadFile(log_);
  for (const nlohmann::json& r : rows) {
    EXPECT_EQ(r["errors"], 0) << r.dump();
    EXPECT_EQ(r["iters"], 1) << r.dump();
    EXPECT_EQ(r["bytes"], 1000 * 4096) << r.dump();
    EXPECT_EQ(r["model"]["tensors"], 1000) << r.dump();
    EXPECT_GT(r["bound_s"].get<double>(), 0) << r.dump();
  }
  EXPECT_EQ(rows[0]["coll"], "model-bcast");
  EXPECT_EQ(rows[1]["coll"], "model-join");
  ASSERT_EQ(rows[1]["model"]["receivers"].size(), 2u) << rows[1].dump();
  EXPECT_GE(rows[1]["model"]["receivers"][1]["join_s"].get<double>(), 0.02) << rows[1].dump();
  EXPECT_NE(ReadFile(log_).find("total errors: 0"), std::string::npos);

  std::vector<std::string> corrupt = args;
  corrupt.insert(corrupt.end(), {"--corrupt-node", "2"});
  ASSERT_NE(RunPerf("model-corrupt", corrupt, &rows, "model-bcast,model-join"), 0) << ReadFile(log_);
  ASSERT_EQ(rows.size(), 2u) << ReadFile(log_);
  for (const nlohmann::json& r : rows) EXPECT_GT(r["errors"].get<uint64_t>(), 0u) << r.dump();
  EXPECT_NE(ReadFile(log_).find("content hash differs"), std::string::npos) << ReadFile(log_);

  EXPECT_EQ(RunPerf("bad-model", {"--model", "dense"}, &rows, "model-bcast"), 2);
  EXPECT_NE(ReadFile(log_).find("unknown --model 'dense'"), std::string::npos) << ReadFile(log_);
}

// reduce / reduce-subset / allreduce rows: every element of the result (allreduce: on every
// node) is checked, and reduce-subset's inputs used must be the first half; with node 0's copy
// treated as wrong every row reports errors and the exit code is non-zero.
TEST_F(FerryPerfBinaryTest, ReduceRowsCheckEveryElement) {
  std::vector<nlohmann::json> rows;
  ASSERT_EQ(RunPerf("reduce", {"--max-bytes", "1M", "--iters", "2", "--op", "prod", "--dtype", "bf16"}, &rows,
                    "reduce,reduce-subset,allreduce"),
            0)
      << ReadFile(log_);
  ASSERT_EQ(rows.size(), 3u * 6u) << ReadFile(log_);
  for (const nlohmann::json& r : rows) {
    EXPECT_EQ(r["errors"], 0) << r.dump();
    EXPECT_EQ(r["iters"], 2) << r.dump();
    EXPECT_EQ(r["op"], "prod") << r.dump();
  }
  ASSERT_NE(RunPerf("reduce-corrupt", {"--max-bytes", "4K", "--iters", "1", "--corrupt-node", "0"}, &rows,
                    "reduce,reduce-subset,allreduce"),
            0)
      << ReadFile(log_);
  ASSERT_EQ(rows.size(), 3u * 2u) << ReadFile(log_);
  for (const nlohmann::json& r : rows) EXPECT_GT(r["errors"].get<uint64_t>(), 0u) << r.dump();
}

}  // namespace
}  // namespace ferry::perf
