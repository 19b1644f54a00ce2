// Tests of control/waiter.h and control/directory/key_waiters.h.
#include "control/waiter.h"

#include <optional>
#include <string>
#include <vector>

#include "control/directory/key_waiters.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// A waiter whose answer the test decides: Attempt answers `ready` once it is set.
class TestWaiter final : public Waiter {
 public:
  explicit TestWaiter(std::vector<absl::Status>* answers)
      : Waiter(absl::InfiniteFuture(), [answers](absl::Status s) { answers->push_back(std::move(s)); }) {}
  std::optional<absl::Status> ready;
  int attempts = 0, unregistered = 0;
  std::vector<WaitEnd> ends;

 protected:
  std::optional<absl::Status> Attempt() override {
    ++attempts;
    return ready;
  }
  absl::Status GiveUp(WaitEnd why) override {
    ends.push_back(why);
    return why == WaitEnd::kDeadline ? absl::DeadlineExceededError("late") : absl::CancelledError("gone");
  }
  void Unregister() override { ++unregistered; }
};

TEST(WaiterTest, PollCompletesOnceTheChangeHappened) {
  std::vector<absl::Status> answers;
  TestWaiter w(&answers);
  EXPECT_FALSE(w.Poll());
  EXPECT_FALSE(w.Poll());
  EXPECT_FALSE(w.done());
  w.ready = absl::OkStatus();
  EXPECT_TRUE(w.Poll());
  EXPECT_TRUE(w.done());
  EXPECT_EQ(w.unregistered, 1);
  EXPECT_THAT(answers, IsEmpty());   // answered only by Deliver (outside the owner's lock)
  w.Deliver();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_TRUE(answers[0].ok());
}

TEST(WaiterTest, FirstCompletionWinsAndLaterOnesDoNothing) {
  std::vector<absl::Status> answers;
  TestWaiter w(&answers);
  EXPECT_TRUE(w.End(WaitEnd::kDeadline));
  w.ready = absl::OkStatus();
  EXPECT_FALSE(w.Poll());                       // not attempted again
  EXPECT_FALSE(w.End(WaitEnd::kCancelled));     // the client cancelling too late
  EXPECT_FALSE(w.Complete(absl::OkStatus()));
  EXPECT_EQ(w.attempts, 0);
  EXPECT_THAT(w.ends, ElementsAre(WaitEnd::kDeadline));
  EXPECT_EQ(w.unregistered, 1);
  w.Deliver();
  w.Deliver();   // answers once
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(WaiterTest, CancellationAnswersWithGiveUp) {
  std::vector<absl::Status> answers;
  TestWaiter w(&answers);
  EXPECT_TRUE(w.End(WaitEnd::kCancelled));
  w.Deliver();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].code(), absl::StatusCode::kCancelled);
}

TEST(WaiterTest, DeliverBeforeCompletionDoesNothing) {
  std::vector<absl::Status> answers;
  TestWaiter w(&answers);
  w.Deliver();
  EXPECT_THAT(answers, IsEmpty());
  EXPECT_TRUE(w.Complete(absl::NotFoundError("x")));
  w.Deliver();
  ASSERT_EQ(answers.size(), 1u);
  EXPECT_EQ(answers[0].code(), absl::StatusCode::kNotFound);
}

TEST(KeyWaitersTest, RegistrationFilesAndLeavesItsKey) {
  std::vector<absl::Status> answers;
  TestWaiter a(&answers), b(&answers), c(&answers);
  KeyWaiters set;
  const KeyWaiters::Key k1{"ns", "k1"}, k2{"ns", "k2"};
  {
    KeyWaiters::Registration ra(&set, k1, &a);
    KeyWaiters::Registration rb(&set, k1, &b);
    KeyWaiters::Registration rc(&set, k2, &c);
    EXPECT_THAT(set.Of(k1), UnorderedElementsAre(&a, &b));
    EXPECT_THAT(set.Of(k2), ElementsAre(&c));
    EXPECT_THAT(set.All(), UnorderedElementsAre(&a, &b, &c));
    ra.Reset();
    ra.Reset();   // idempotent
    EXPECT_FALSE(ra.active());
    EXPECT_THAT(set.Of(k1), ElementsAre(&b));
  }
  // Destruction leaves the set, and no empty key is kept.
  EXPECT_THAT(set.All(), IsEmpty());
  EXPECT_EQ(set.keys(), 0u);
}

TEST(KeyWaitersTest, MovedRegistrationStaysFiledOnce) {
  std::vector<absl::Status> answers;
  TestWaiter a(&answers);
  KeyWaiters set;
  const KeyWaiters::Key k{"ns", "k"};
  KeyWaiters::Registration outer;
  {
    KeyWaiters::Registration r(&set, k, &a);
    outer = std::move(r);
  }   // the moved-from one leaves nothing behind
  EXPECT_THAT(set.Of(k), ElementsAre(&a));
  outer.Reset();
  EXPECT_EQ(set.keys(), 0u);
}

}  // namespace
}  // namespace ferry::control
