// ferryd and ferry-coord refuse bad flags at startup with a message and exit code 2, and a
// second ferry-coord on a busy port exits 2 ("already in use") while the first keeps
// serving. Real binaries, started as processes.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "core/names.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Spawns argv (output to `log`) and waits for it to exit, at most `limit`. Returns its exit
// code; -1 (after killing it) if it was still running, -2 if it died of a signal.
int RunToExit(const std::vector<std::string>& argv, const std::string& log,
              absl::Duration limit = absl::Seconds(30)) {
  const pid_t pid = LocalCluster::Spawn(argv, log);
  const absl::Time deadline = absl::Now() + limit;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (absl::Now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
}

class StartupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ferry-startup.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::random_device rd;
    port_ = 20000 + static_cast<int>(rd() % 30000);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Runs ferryd with valid flags, those named in `extra` replaced by it, and expects exit 2
  // with every one of `says` in its output.
  void ExpectFerrydRefuses(const std::vector<std::string>& extra, const std::vector<std::string>& says) {
    Expect(WithFlags(LocalCluster::Bin("ferryd"),
                     {{"--name", "ok"},
                      {"--coord", absl::StrCat("127.0.0.1:", port_)},
                      {"--socket", dir_ + "/n.sock"},
                      {"--arena", "16MiB"}},
                     extra),
           says);
  }
  void ExpectCoordRefuses(const std::vector<std::string>& extra, const std::vector<std::string>& says) {
    Expect(WithFlags(LocalCluster::Bin("ferry-coord"), {{"--listen", absl::StrCat("127.0.0.1:", port_)}}, extra),
           says);
  }

  static std::vector<std::string> WithFlags(const std::string& bin,
                                            const std::vector<std::pair<std::string, std::string>>& defaults,
                                            const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {bin};
    for (const auto& [flag, value] : defaults) {
      if (std::find(extra.begin(), extra.end(), flag) != extra.end()) continue;
      argv.push_back(flag);
      argv.push_back(value);
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  void Expect(const std::vector<std::string>& argv, const std::vector<std::string>& says) {
    const std::string log = absl::StrCat(dir_, "/run", runs_++, ".log");
    const std::string cmd = absl::StrJoin(argv, " ");
    EXPECT_EQ(RunToExit(argv, log), 2) << cmd << "\n" << ReadFile(log);
    const std::string out = ReadFile(log);
    for (const std::string& s : says) EXPECT_THAT(out, HasSubstr(s)) << cmd;
  }

  std::string dir_;
  int port_ = 0;
  int runs_ = 0;
};

TEST_F(StartupTest, FerrydRefusesBadCoordinatorAddresses) {
  ExpectFerrydRefuses({"--coord", "127.0.0.1"}, {"--coord", "no port"});
  ExpectFerrydRefuses({"--coord", "127.0.0.1:"}, {"--coord", "no port"});
  ExpectFerrydRefuses({"--coord", "127.0.0.1:0"}, {"--coord", "outside 1-65535"});
  ExpectFerrydRefuses({"--coord", "127.0.0.1:70000"}, {"--coord", "outside 1-65535"});
  ExpectFerrydRefuses({"--coord", "not a host:7700"}, {"--coord", "not a host name"});
  ExpectFerrydRefuses({"--coord", "a:b:c"}, {"--coord", "more than one ':'"});
  ExpectFerrydRefuses({"--coord", ":7700"}, {"--coord", "no host"});
}

TEST_F(StartupTest, FerrydRefusesBadNames) {
  ExpectFerrydRefuses({"--name", std::string(kMaxNodeNameBytes + 1, 'n')},
                      {"--name", "129 bytes", "limit is 128"});
  ExpectFerrydRefuses({"--name", "two words"}, {"--name", "outside [A-Za-z0-9_.-]"});
  ExpectFerrydRefuses({"--name", "a,b"}, {"--name", "outside [A-Za-z0-9_.-]"});
  ExpectFerrydRefuses({"--name", "100%"}, {"--name", "outside [A-Za-z0-9_.-]"});
  ExpectFerrydRefuses({"--name", ""}, {"--name", "empty"});
}

TEST_F(StartupTest, FerrydRefusesArenasOfZeroOrMoreThanTheMachine) {
  ExpectFerrydRefuses({"--arena", "0"}, {"--arena", "invalid size '0'"});
  ExpectFerrydRefuses({"--arena", "lots"}, {"--arena", "invalid size 'lots'"});
  const uint64_t ram = static_cast<uint64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
  ExpectFerrydRefuses({"--arena", std::to_string(ram + 4096)}, {"--arena", "more than this machine"});
  ExpectFerrydRefuses({"--arena", "1000TiB", "--prefault", "false"}, {"--arena", "more than this machine"});
}

TEST_F(StartupTest, FerrydRefusesReduceScratchOfZeroPartialSetsOrTooMuch) {
  const std::string rule = "a positive multiple of 8.00 MiB up to 4.00 GiB";
  ExpectFerrydRefuses({"--reduce-scratch", "0"}, {"--reduce-scratch", "invalid size '0'", rule});
  ExpectFerrydRefuses({"--reduce-scratch", "12MiB"}, {"--reduce-scratch", "invalid size '12MiB'", rule});
  ExpectFerrydRefuses({"--reduce-scratch", "4MiB"}, {"--reduce-scratch", "invalid size '4MiB'", rule});
  ExpectFerrydRefuses({"--reduce-scratch", "8GiB"}, {"--reduce-scratch", "invalid size '8GiB'", rule});
  ExpectFerrydRefuses({"--reduce-scratch", "-8MiB"}, {"--reduce-scratch", "invalid size '-8MiB'"});
  ExpectFerrydRefuses({"--reduce-scratch", "lots"}, {"--reduce-scratch", "invalid size 'lots'"});
}

TEST_F(StartupTest, FerrydRefusesUnknownFlagsWithExit2) {
  ExpectFerrydRefuses({"--no-such-flag"}, {"no-such-flag"});
  ExpectFerrydRefuses({"--window", "many"}, {"--window"});
}

TEST_F(StartupTest, CoordinatorRefusesBadListenAddresses) {
  ExpectCoordRefuses({"--listen", ":99999"}, {"--listen", "outside 1-65535"});
  ExpectCoordRefuses({"--listen", "127.0.0.1"}, {"--listen", "no port"});
  ExpectCoordRefuses({"--listen", "garbage"}, {"--listen", "no port"});
  ExpectCoordRefuses({"--listen", "bad host:7700"}, {"--listen", "not a host name"});
  ExpectCoordRefuses({"--listen", "127.0.0.1:0"}, {"--listen", "outside 1-65535"});
}

TEST_F(StartupTest, CoordinatorRefusesBadTimings) {
  ExpectCoordRefuses({"--liveness-ms", "0"}, {"--liveness-ms"});
  ExpectCoordRefuses({"--heartbeat-ms", "0"}, {"--heartbeat-ms"});
  ExpectCoordRefuses({"--heartbeat-ms", "3000", "--liveness-ms", "3000"}, {"shorter than the liveness"});
  ExpectCoordRefuses({"--heartbeat-ms", "5000", "--liveness-ms", "3000"}, {"shorter than the liveness"});
  ExpectCoordRefuses({"--liveness-ms", "soon"}, {"--liveness-ms"});
}

// A second coordinator on the first one's port exits 2 naming the address; the first still
// serves its cluster.
TEST(BusyPortTest, SecondCoordinatorOnTheSamePortExits2AndTheFirstStillServes) {
  ClusterOptions o;
  o.nodes = 1;
  o.arena = "32MiB";
  LocalCluster cluster(o);
  ASSERT_TRUE(cluster.Start().ok()) << "cluster did not start; logs in " << cluster.dir();
  const std::string log = cluster.dir() + "/second-coord.log";
  const int rc = RunToExit({LocalCluster::Bin("ferry-coord"), "--listen", cluster.coord_address()}, log);
  const std::string out = ReadFile(log);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_THAT(out, HasSubstr(cluster.coord_address()));
  EXPECT_THAT(out, HasSubstr("already in use"));

  // The first coordinator still has the node and answers a Put (Publish) and a Locate.
  EXPECT_TRUE(cluster.WaitAlive(0, 1, absl::Seconds(10)).ok());
  std::unique_ptr<Client> c = cluster.Connect(0);
  ASSERT_NE(c, nullptr);
  std::vector<uint8_t> data = Pattern(1000, 3);
  ASSERT_TRUE(c->Put("busy-port/obj", data).ok());
  absl::StatusOr<std::vector<ObjectInfo>> listed = c->List("", "busy-port/");
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->size(), 1u);
}

}  // namespace
}  // namespace ferry::testing
