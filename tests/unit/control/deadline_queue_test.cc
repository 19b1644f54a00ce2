// Tests of control/cluster/deadline_queue.h.
#include "control/cluster/deadline_queue.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::control {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST(DeadlineQueueTest, EmptyQueueSleepsForever) {
  DeadlineQueue<int> q;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.Next(), absl::InfiniteFuture());
  EXPECT_THAT(q.PopExpired(absl::InfiniteFuture()), IsEmpty());
}

TEST(DeadlineQueueTest, SetReportsOnlyAnEarlierHead) {
  DeadlineQueue<int> q;
  EXPECT_TRUE(q.Set(1, kT0 + absl::Seconds(3)));    // first: earlier than forever
  EXPECT_FALSE(q.Set(2, kT0 + absl::Seconds(5)));   // later than the head: no wake-up
  EXPECT_TRUE(q.Set(3, kT0 + absl::Seconds(1)));    // new head
  EXPECT_EQ(q.Next(), kT0 + absl::Seconds(1));
  // Moving a key later (a heartbeat) never needs a wake-up, even the head's.
  EXPECT_FALSE(q.Set(3, kT0 + absl::Seconds(9)));
  EXPECT_EQ(q.Next(), kT0 + absl::Seconds(3));
  // Moving one earlier than the head does.
  EXPECT_TRUE(q.Set(2, kT0 + absl::Seconds(2)));
  EXPECT_EQ(q.Next(), kT0 + absl::Seconds(2));
  EXPECT_EQ(q.size(), 3u);
}

TEST(DeadlineQueueTest, PopExpiredReturnsDueKeysEarliestFirstAndRemovesThem) {
  DeadlineQueue<int> q;
  (void)q.Set(1, kT0 + absl::Seconds(3));
  (void)q.Set(2, kT0 + absl::Seconds(1));
  (void)q.Set(3, kT0 + absl::Seconds(2));
  (void)q.Set(4, kT0 + absl::Seconds(7));
  EXPECT_THAT(q.PopExpired(kT0), IsEmpty());
  EXPECT_THAT(q.PopExpired(kT0 + absl::Seconds(3)), ElementsAre(2, 3, 1));   // at the deadline counts
  EXPECT_FALSE(q.Contains(1));
  EXPECT_TRUE(q.Contains(4));
  EXPECT_EQ(q.Next(), kT0 + absl::Seconds(7));
  EXPECT_THAT(q.PopExpired(kT0 + absl::Seconds(3)), IsEmpty());
}

TEST(DeadlineQueueTest, RescheduledKeyExpiresOnlyAtItsNewDeadline) {
  DeadlineQueue<int> q;
  (void)q.Set(1, kT0 + absl::Seconds(1));
  (void)q.Set(1, kT0 + absl::Seconds(5));   // the node sent a heartbeat
  EXPECT_EQ(q.size(), 1u);
  EXPECT_THAT(q.PopExpired(kT0 + absl::Seconds(4)), IsEmpty());
  EXPECT_THAT(q.PopExpired(kT0 + absl::Seconds(5)), ElementsAre(1));
}

TEST(DeadlineQueueTest, EraseRemovesAndIgnoresUnknownKeys) {
  DeadlineQueue<int> q;
  (void)q.Set(1, kT0 + absl::Seconds(1));
  (void)q.Set(2, kT0 + absl::Seconds(2));
  q.Erase(1);
  q.Erase(42);
  EXPECT_EQ(q.Next(), kT0 + absl::Seconds(2));
  EXPECT_THAT(q.PopExpired(kT0 + absl::Seconds(10)), ElementsAre(2));
  EXPECT_TRUE(q.empty());
}

TEST(DeadlineQueueTest, EqualDeadlinesAreAllKept) {
  DeadlineQueue<int> q;
  for (int i = 0; i < 5; ++i) (void)q.Set(i, kT0);
  EXPECT_THAT(q.PopExpired(kT0), ElementsAre(0, 1, 2, 3, 4));
}

}  // namespace
}  // namespace ferry::control
