// The `ferry` command line against a real local cluster: exit codes (0 ok, 1 the operation
// failed, 2 usage or invalid input, 3 ferryd unreachable), its messages, per-verb defaults,
// and that `get` never destroys what it did not create when writing fails.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

std::string Quote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

struct CliRun {
  int code = -1;
  std::string out;  // stdout and stderr together
};

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ClusterOptions o;
    o.nodes = 2;
    o.arena = "64MiB";
    cluster_ = new LocalCluster(o);
    ASSERT_TRUE(cluster_->Start().ok()) << "cluster did not start; logs in " << cluster_->dir();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  // Runs `ferry --socket <node> args...` through sh; `prefix` is shell run before the exec
  // (ulimit, trap). stdout and stderr are collected together.
  static CliRun Ferry(const std::vector<std::string>& args, int node = 0, const std::string& prefix = "") {
    std::string cmd = absl::StrCat(prefix, " exec ", Quote(LocalCluster::Bin("ferry")), " --socket ",
                                   Quote(cluster_->socket(node)));
    for (const std::string& a : args) absl::StrAppend(&cmd, " ", Quote(a));
    const std::string out = cluster_->dir() + "/ferry.out";
    const int status = std::system(absl::StrCat("sh -c ", Quote(cmd), " > ", Quote(out), " 2>&1").c_str());
    CliRun r;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.out = ReadFile(out);
    return r;
  }

  static std::string Dir() { return cluster_->dir(); }

  // Puts `bytes` as KEY through the CLI on node 0.
  static void PutBytes(const std::string& key, const std::string& bytes) {
    const std::string in = Dir() + "/put-input.bin";
    WriteFile(in, bytes);
    CliRun r = Ferry({"put", in, key});
    ASSERT_EQ(r.code, 0) << r.out;
  }

  static LocalCluster* cluster_;
};
LocalCluster* CliTest::cluster_ = nullptr;

// ---- exit codes -----------------------------------------------------------------------

TEST_F(CliTest, UsageAndInvalidInputExit2) {
  const std::vector<std::vector<std::string>> cases = {
      {"--no-such-flag", "status"},
      {"get"},                                   // KEY FILE missing
      {"--ns", "bad ns", "ls"},                  // namespace
      {"get", "", Dir() + "/x"},                 // empty key
      {"get", std::string(300, 'k'), Dir() + "/x"},  // key too long
      {"rm", std::string(257, 'k')},
      {"bcast", "k", "--nodes", ""},
      {"bcast", "k", "--nodes", ","},
      {"bcast", "k", "--nodes", "n0,,n1"},
      {"bcast", "k", "--nodes", "n0", "--nodes", ""},
      {"get", "k", Dir() + "/x", "--timeout", "soon"},
      {"put", Dir() + "/does-not-exist", "k"},   // unreadable input
      {"put", Dir(), "k"},                       // a directory
      {"get", "k", Dir() + "/no-such-dir/out"},  // uncreatable output
  };
  for (const std::vector<std::string>& args : cases) {
    CliRun r = Ferry(args);
    EXPECT_EQ(r.code, 2) << absl::StrJoin(args, " ") << "\n" << r.out;
    EXPECT_THAT(r.out, HasSubstr("ferry: ")) << absl::StrJoin(args, " ");
  }
  EXPECT_THAT(Ferry({"bcast", "k", "--nodes", ""}).out, HasSubstr("empty node name"));
  EXPECT_THAT(Ferry({"get", "", Dir() + "/x"}).out, HasSubstr("key is empty"));
}

TEST_F(CliTest, UnreachableFerrydExits3) {
  const std::string cmd = absl::StrCat(Quote(LocalCluster::Bin("ferry")), " --socket ",
                                       Quote(Dir() + "/nobody.sock"), " status > ",
                                       Quote(Dir() + "/unreach.out"), " 2>&1");
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3) << ReadFile(Dir() + "/unreach.out");
  EXPECT_THAT(ReadFile(Dir() + "/unreach.out"), HasSubstr("nobody.sock"));
}

TEST_F(CliTest, FailedOperationsExit1) {
  CliRun rm = Ferry({"rm", "cli-test/never-created"});
  EXPECT_EQ(rm.code, 1) << rm.out;
  CliRun bcast = Ferry({"bcast", "cli-test/never-created", "--nodes", "no-such-node", "--timeout", "2s"});
  EXPECT_EQ(bcast.code, 1) << bcast.out;
}

TEST_F(CliTest, RmOfSeveralKeysDeletesThemAsOneBatchAndNamesTheMissingOne) {
  const std::string file = Dir() + "/rm-batch.bin";
  {
    std::ofstream out(file, std::ios::binary);
    out << "some bytes";
  }
  ASSERT_EQ(Ferry({"put", file, "cli-test/rm-a"}).code, 0);
  ASSERT_EQ(Ferry({"put", file, "cli-test/rm-b"}).code, 0);
  CliRun r = Ferry({"rm", "cli-test/rm-a", "cli-test/rm-b", "cli-test/rm-never"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("deleted default/cli-test/rm-a"));
  EXPECT_THAT(r.out, HasSubstr("deleted default/cli-test/rm-b"));
  EXPECT_THAT(r.out, HasSubstr("cli-test/rm-never: NOT_FOUND"));
  EXPECT_THAT(r.out, HasSubstr("1 of 3 objects were not deleted"));
  EXPECT_EQ(Ferry({"get", "cli-test/rm-a", "/dev/null", "--timeout", "0"}).code, 1);
  EXPECT_EQ(Ferry({"rm", "cli-test/dup", "cli-test/dup"}).code, 2);
}

TEST_F(CliTest, GetOfAMissingKeySaysItDoesNotExist) {
  for (const char* timeout : {"0", "200ms"}) {
    CliRun r = Ferry({"get", "cli-test/missing", "/dev/null", "--timeout", timeout});
    EXPECT_EQ(r.code, 1) << timeout << ": " << r.out;
    EXPECT_THAT(r.out, HasSubstr("does not exist")) << timeout;
    EXPECT_THAT(r.out, Not(HasSubstr("deadline"))) << timeout;
  }
}

TEST_F(CliTest, HelpDocumentsTheExitCodes) {
  CliRun r = Ferry({"--help"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_THAT(r.out, HasSubstr("2 usage or invalid input"));
  EXPECT_THAT(r.out, HasSubstr("3 ferryd could not be reached"));
}

// ---- per-verb defaults ----------------------------------------------------------------

TEST_F(CliTest, GetTimeoutDefaultsTo30sAndBcastTo60s) {
  CliRun help = Ferry({"get", "--help"});
  EXPECT_EQ(help.code, 0) << help.out;
  EXPECT_THAT(help.out, HasSubstr("DURATION=30s"));
  EXPECT_THAT(help.out, Not(HasSubstr("60s")));
  CliRun bhelp = Ferry({"bcast", "--help"});
  EXPECT_THAT(bhelp.out, HasSubstr("DURATION=60s"));

  PutBytes("cli-test/timeout", "x");
  const std::string report = Dir() + "/timeout.json";
  CliRun get = Ferry({"--json", "get", "cli-test/timeout", Dir() + "/timeout.bin"}, 1);
  ASSERT_EQ(get.code, 0) << get.out;
  nlohmann::json j = nlohmann::json::parse(get.out);
  EXPECT_EQ(j["timeout_seconds"].get<double>(), 30.0);
}

// ---- messages -------------------------------------------------------------------------

TEST_F(CliTest, SmallObjectsReportNoThroughputAndCountsAreSingular) {
  CliRun put = Ferry({"--ns", "clitest1", "put", "-", "only"}, 0, "printf 'seventeen bytes!!' |");
  ASSERT_EQ(put.code, 0) << put.out;
  EXPECT_THAT(put.out, HasSubstr("17 bytes"));
  EXPECT_THAT(put.out, Not(HasSubstr("/s")));
  CliRun get = Ferry({"--ns", "clitest1", "get", "only", Dir() + "/only.bin"}, 1);
  ASSERT_EQ(get.code, 0) << get.out;
  EXPECT_THAT(get.out, Not(HasSubstr("/s")));
  EXPECT_THAT(get.out, Not(HasSubstr("pulled in")));
  EXPECT_THAT(get.out, HasSubstr("from the coordinator (inline)"));
  CliRun ls = Ferry({"--ns", "clitest1", "ls"});
  ASSERT_EQ(ls.code, 0) << ls.out;
  EXPECT_THAT(ls.out, HasSubstr("1 object in namespace clitest1"));
}

TEST_F(CliTest, LargeObjectsReportThroughput) {
  PutBytes("cli-test/large", std::string(2 << 20, 'L'));
  CliRun get = Ferry({"get", "cli-test/large", Dir() + "/large.bin"}, 1);
  ASSERT_EQ(get.code, 0) << get.out;
  EXPECT_THAT(get.out, HasSubstr("from node n0"));
  EXPECT_THAT(get.out, HasSubstr("/s)"));
}

// ---- reduce / allreduce ---------------------------------------------------------------

// Two i32 inputs put through the CLI on nodes 0 and 1; `ferry reduce` and `ferry allreduce`
// sum them (JSON names the inputs used), `ferry get` reads the sums; bad flags exit 2 and a
// result that exists exits 1.
TEST_F(CliTest, ReduceAndAllReduceSumInputsOfTwoNodes) {
  std::string a(4 * 3, '\0'), b(4 * 3, '\0');
  const int32_t va[3] = {1, -2, 300}, vb[3] = {10, 20, -30};
  std::memcpy(a.data(), va, 12);
  std::memcpy(b.data(), vb, 12);
  for (int node : {0, 1}) {
    const std::string in = Dir() + "/reduce-in" + std::to_string(node);
    WriteFile(in, node == 0 ? a : b);
    CliRun put = Ferry({"put", in, "cli-test/r" + std::to_string(node), "--dtype", "i32"}, node);
    ASSERT_EQ(put.code, 0) << put.out;
  }
  CliRun r = Ferry({"--json", "reduce", "cli-test/rsum", "cli-test/r0", "cli-test/r1", "--dtype", "i32"});
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["used"].size(), 2u) << r.out;
  EXPECT_EQ(j["bytes"], 12) << r.out;
  const std::string out = Dir() + "/reduce-out";
  ASSERT_EQ(Ferry({"get", "cli-test/rsum", out}).code, 0);
  int32_t got[3] = {};
  const std::string bytes = ReadFile(out);
  ASSERT_EQ(bytes.size(), 12u);
  std::memcpy(got, bytes.data(), 12);
  EXPECT_EQ(got[0], 11);
  EXPECT_EQ(got[1], 18);
  EXPECT_EQ(got[2], 270);
  CliRun all = Ferry({"allreduce", "cli-test/rmax", "cli-test/r0", "cli-test/r1", "--dtype", "i32", "--op", "max"}, 1);
  ASSERT_EQ(all.code, 0) << all.out;
  EXPECT_THAT(all.out, HasSubstr("allreduce default/cli-test/rmax (max, i32, 12 bytes)"));
  EXPECT_EQ(Ferry({"reduce", "cli-test/rx", "cli-test/r0", "--op", "mean"}).code, 2);
  CliRun exists = Ferry({"reduce", "cli-test/rsum", "cli-test/r0", "cli-test/r1", "--dtype", "i32"});
  EXPECT_EQ(exists.code, 1) << exists.out;
  EXPECT_THAT(exists.out, HasSubstr("already exists"));
}

// `ferry group`: create a group of nodes 0 and 1, list it, run an allreduce of two i32
// inputs put through the CLI (every member holds the sum), refuse bad verbs and a duplicate
// member, delete it.
TEST_F(CliTest, GroupCreateListRunDelete) {
  std::string a(8, '\0'), b(8, '\0');
  const int32_t va[2] = {5, -7}, vb[2] = {100, 3};
  std::memcpy(a.data(), va, 8);
  std::memcpy(b.data(), vb, 8);
  for (int node : {0, 1}) {
    const std::string in = Dir() + "/group-in" + std::to_string(node);
    WriteFile(in, node == 0 ? a : b);
    ASSERT_EQ(Ferry({"put", in, "cli-test/g" + std::to_string(node), "--dtype", "i32"}, node).code, 0);
  }
  CliRun dup = Ferry({"group", "create", "cli-pair", "n0", "n0"});
  EXPECT_EQ(dup.code, 2) << dup.out;
  EXPECT_THAT(dup.out, HasSubstr("twice"));
  CliRun neither = Ferry({"group", "create", "cli-none"});
  EXPECT_EQ(neither.code, 2) << neither.out;
  EXPECT_THAT(neither.out, HasSubstr("NODES or --lease"));
  CliRun no_holder = Ferry({"group", "create", "cli-none", "--lease", "5"}, 0, "unset FERRY_HOLDER;");
  EXPECT_EQ(no_holder.code, 2) << no_holder.out;
  EXPECT_THAT(no_holder.out, HasSubstr("--holder"));
  CliRun no_lease = Ferry({"group", "create", "cli-none", "--lease", "5", "--holder", "me"});
  EXPECT_EQ(no_lease.code, 1) << no_lease.out;
  EXPECT_THAT(no_lease.out, HasSubstr("lease 5"));
  CliRun made = Ferry({"--json", "group", "create", "cli-pair", "n0", "n1"});
  ASSERT_EQ(made.code, 0) << made.out;
  EXPECT_EQ(nlohmann::json::parse(made.out)["members"].size(), 2u) << made.out;
  CliRun list = Ferry({"group", "list"});
  ASSERT_EQ(list.code, 0) << list.out;
  EXPECT_THAT(list.out, HasSubstr("group cli-pair (2 members"));
  CliRun run = Ferry({"group", "run", "allreduce", "cli-pair", "cli-test/gsum", "cli-test/g0", "cli-test/g1",
                      "--dtype", "i32"}, 1);
  ASSERT_EQ(run.code, 0) << run.out;
  EXPECT_THAT(run.out, HasSubstr("allreduce on group cli-pair"));
  for (int node : {0, 1}) {
    const std::string out = Dir() + "/group-out" + std::to_string(node);
    ASSERT_EQ(Ferry({"get", "cli-test/gsum", out}, node).code, 0);
    const std::string bytes = ReadFile(out);
    ASSERT_EQ(bytes.size(), 8u);
    int32_t got[2];
    std::memcpy(got, bytes.data(), 8);
    EXPECT_EQ(got[0], 105);
    EXPECT_EQ(got[1], -4);
  }
  EXPECT_EQ(Ferry({"group", "run", "allsum", "cli-pair", "cli-test/x", "cli-test/g0", "cli-test/g1"}).code, 2);
  CliRun absent = Ferry({"group", "run", "allreduce", "nobody", "cli-test/x", "cli-test/g0", "cli-test/g1",
                         "--dtype", "i32"});
  EXPECT_EQ(absent.code, 1) << absent.out;
  EXPECT_THAT(absent.out, HasSubstr("no group named 'nobody'"));
  CliRun del = Ferry({"group", "delete", "cli-pair"});
  ASSERT_EQ(del.code, 0) << del.out;
  EXPECT_THAT(del.out, HasSubstr("1 collective done"));
  EXPECT_EQ(Ferry({"group", "delete", "cli-pair"}).code, 1);
}

// ---- get never destroys what it did not create ----------------------------------------

// A regular target is replaced only on success: a write that fails (here the file size
// limit, RLIMIT_FSIZE) leaves the old content and no temporary file.
TEST_F(CliTest, FailedWriteLeavesAnExistingFileIntact) {
  PutBytes("cli-test/big", std::string(3 << 20, 'B'));
  const std::string dir = Dir() + "/keep";
  std::filesystem::create_directories(dir);
  const std::string target = dir + "/precious.txt";
  WriteFile(target, "precious");
  // dash counts ulimit -f in 512-byte blocks: 1 MiB, less than the object.
  CliRun r = Ferry({"get", "cli-test/big", target}, 1, "trap '' XFSZ; ulimit -f 2048;");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("writing"));
  EXPECT_EQ(ReadFile(target), "precious");
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(dir)) left.push_back(e.path().filename());
  EXPECT_THAT(left, ::testing::ElementsAre("precious.txt"));
}

TEST_F(CliTest, SuccessfulGetReplacesTheFileAndKeepsItsMode) {
  PutBytes("cli-test/replace", "new content");
  const std::string target = Dir() + "/replace.txt";
  WriteFile(target, "old content that is longer");
  ASSERT_EQ(chmod(target.c_str(), 0640), 0);
  CliRun r = Ferry({"get", "cli-test/replace", target}, 1);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ReadFile(target), "new content");
  struct stat st = {};
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // Through a symlink, the file it points to is replaced and the link stays.
  const std::string link = Dir() + "/replace.link";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  PutBytes("cli-test/via-link", "via link");
  ASSERT_EQ(Ferry({"get", "cli-test/via-link", link}, 1).code, 0);
  EXPECT_EQ(ReadFile(target), "via link");
  struct stat lst = {};
  ASSERT_EQ(lstat(link.c_str(), &lst), 0);
  EXPECT_TRUE(S_ISLNK(lst.st_mode));
}

// A fifo is written in place; when its reader goes away mid-object the get fails and the
// fifo is still there.
TEST_F(CliTest, FailedWriteToAFifoLeavesTheFifo) {
  PutBytes("cli-test/fifo", std::string(3 << 20, 'F'));
  const std::string fifo = Dir() + "/out.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0644), 0);
  // The reader opens blocking, so it holds the fifo until ferry has opened it and written
  // (a reader that gave up first would leave ferry's open(O_WRONLY) waiting forever: poll on
  // a fifo nobody has opened for writing may report POLLHUP at once on some kernels).
  std::atomic<bool> reader_done{false};
  std::thread reader([&fifo, &reader_done] {
    const int fd = open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char c;
      (void)!read(fd, &c, 1);  // the first byte, or end of file if the writer never wrote
      close(fd);               // the writer now gets EPIPE
    }
    reader_done = true;
  });
  CliRun r = Ferry({"get", "cli-test/fifo", fifo}, 1, "trap '' PIPE;");
  // If ferry ended without opening the fifo, the reader still waits in open: release it
  // (bounded: 10 s).
  for (int i = 0; i < 200 && !reader_done; ++i) {
    const int release = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (release >= 0) close(release);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  reader.join();
  EXPECT_EQ(r.code, 1) << r.out;
  struct stat st = {};
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0) << "the fifo was removed";
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

// A device whose writes fail (a copy of /dev/full made by the test, needs CAP_MKNOD) is
// written in place and never unlinked.
TEST_F(CliTest, FailedWriteToADeviceLeavesTheDevice) {
  const std::string dev = Dir() + "/full";
  if (mknod(dev.c_str(), S_IFCHR | 0666, makedev(1, 7)) != 0) {
    GTEST_SKIP() << "cannot create a device node here: " << strerror(errno);
  }
  PutBytes("cli-test/dev", "to a full device");
  CliRun r = Ferry({"get", "cli-test/dev", dev}, 1);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("No space left"));
  struct stat st = {};
  ASSERT_EQ(lstat(dev.c_str(), &st), 0) << "the device node was removed";
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST_F(CliTest, GetToDevNullKeepsDevNull) {
  PutBytes("cli-test/null", "discard me");
  CliRun r = Ferry({"get", "cli-test/null", "/dev/null"}, 1);
  EXPECT_EQ(r.code, 0) << r.out;
  struct stat st = {};
  ASSERT_EQ(stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

}  // namespace
}  // namespace ferry::testing
