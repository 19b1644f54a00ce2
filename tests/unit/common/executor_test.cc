// Tests of common/executor.h.
#include "common/executor.h"

#include <atomic>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace ferry {
namespace {

TEST(ExecutorTest, RunsTasksAndJoinsEveryThread) {
  std::atomic<int> ran{0};
  {
    Executor ex("test", 4);
    for (int i = 0; i < 100; ++i) {
      // Never more than 4 at once: wait until a slot frees up (tasks are short).
      while (!ex.Submit([&] { ++ran; }).ok()) std::this_thread::yield();
    }
    EXPECT_LE(ex.threads(), 4u);
    ex.Shutdown();
    EXPECT_EQ(ex.threads(), 0u);
  }
  EXPECT_EQ(ran.load(), 100);
}

TEST(ExecutorTest, RefusesBeyondItsLimitAndAfterShutdown) {
  Executor ex("pulls", 2);
  absl::Notification release;
  std::atomic<int> started{0};
  ASSERT_TRUE(ex.Submit([&] { ++started; release.WaitForNotification(); }).ok());
  ASSERT_TRUE(ex.Submit([&] { ++started; release.WaitForNotification(); }).ok());
  absl::Status third = ex.Submit([] {});
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(third.message().find("pulls"), std::string::npos) << third;
  release.Notify();
  ex.Shutdown();
  EXPECT_EQ(started.load(), 2);
  EXPECT_EQ(ex.Submit([] {}).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ExecutorTest, ShutdownWaitsForRunningTasks) {
  Executor ex("slow", 3);
  std::atomic<int> finished{0};
  absl::Notification go;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(ex.Submit([&] {
      go.WaitForNotification();
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++finished;
    }).ok());
  }
  std::thread releaser([&] { go.Notify(); });
  ex.Shutdown();   // must not return before all three finished
  EXPECT_EQ(finished.load(), 3);
  releaser.join();
}

TEST(ExecutorTest, ShutdownFromATaskIsRefusedNotADeadlock) {
  Executor ex("self", 1);
  absl::Notification done;
  ASSERT_TRUE(ex.Submit([&] {
    ex.Shutdown();   // returns at once: a worker cannot join itself
    done.Notify();
  }).ok());
  done.WaitForNotification();
  ex.Shutdown();
}

}  // namespace
}  // namespace ferry
