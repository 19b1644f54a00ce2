#include "control/cluster/session_queue.h"

#include <gtest/gtest.h>

namespace ferry::control {
namespace {

OutQueue::Message Msg(uint64_t op) {   // not a membership delta: never merged
  auto m = std::make_shared<proto::CoordMessage>();
  m->mutable_drop()->set_op_id(op);
  return m;
}

TEST(SessionQueueTest, OneWriteInFlightInOrder) {
  OutQueue q(QueueLimits{});
  std::string why;
  ASSERT_TRUE(q.Push(Msg(1), 10, &why));
  ASSERT_TRUE(q.Push(Msg(2), 10, &why));
  OutQueue::Message first = q.StartNext();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->drop().op_id(), 1u);
  EXPECT_EQ(q.StartNext(), nullptr);   // one in flight at a time
  ASSERT_TRUE(q.Push(Msg(3), 10, &why));
  EXPECT_EQ(q.WriteDone()->drop().op_id(), 2u);
  EXPECT_EQ(q.WriteDone()->drop().op_id(), 3u);
  EXPECT_EQ(q.WriteDone(), nullptr);
  EXPECT_FALSE(q.in_flight());
  EXPECT_EQ(q.messages(), 0u);
  EXPECT_EQ(q.bytes(), 0u);
}

// A failed write ends the stream: retiring it leaves nothing in flight even with messages
// queued behind it (the session waits for no write before it finishes).
TEST(SessionQueueTest, RetireLeavesNothingInFlight) {
  OutQueue q(QueueLimits{});
  std::string why;
  ASSERT_TRUE(q.Push(Msg(1), 10, &why));
  ASSERT_TRUE(q.Push(Msg(2), 10, &why));
  ASSERT_NE(q.StartNext(), nullptr);
  q.Retire();
  EXPECT_FALSE(q.in_flight());
  EXPECT_EQ(q.messages(), 1u);
  EXPECT_EQ(q.bytes(), 10u);
  q.Clear();
  EXPECT_EQ(q.bytes(), 0u);
  q.Retire();   // nothing in flight: a no-op
  EXPECT_FALSE(q.in_flight());
}

TEST(SessionQueueTest, ACountLimitRefusesAndSaysWhy) {
  OutQueue q(QueueLimits{.max_messages = 3, .max_bytes = 1 << 20});
  std::string why;
  for (uint64_t i = 0; i < 3; ++i) ASSERT_TRUE(q.Push(Msg(i), 1, &why));
  ASSERT_NE(q.StartNext(), nullptr);   // the one in flight still counts
  EXPECT_FALSE(q.Push(Msg(9), 1, &why));
  EXPECT_NE(why.find("outgoing queue is full (3 messages, limit 3)"), std::string::npos) << why;
  EXPECT_EQ(q.messages(), 3u);
  q.WriteDone();
  EXPECT_TRUE(q.Push(Msg(9), 1, &why));
}

TEST(SessionQueueTest, AByteLimitRefusesAndSaysWhy) {
  OutQueue q(QueueLimits{.max_messages = 100, .max_bytes = 100});
  std::string why;
  ASSERT_TRUE(q.Push(Msg(1), 60, &why));
  EXPECT_FALSE(q.Push(Msg(2), 50, &why));
  EXPECT_NE(why.find("60 bytes queued, 50 more, limit 100"), std::string::npos) << why;
  EXPECT_TRUE(q.Push(Msg(2), 40, &why));
  EXPECT_EQ(q.bytes(), 100u);
}

TEST(SessionQueueTest, ClearKeepsTheWriteInFlight) {
  OutQueue q(QueueLimits{});
  std::string why;
  ASSERT_TRUE(q.Push(Msg(1), 7, &why));
  ASSERT_TRUE(q.Push(Msg(2), 5, &why));
  OutQueue::Message m = q.StartNext();
  q.Clear();
  EXPECT_TRUE(q.in_flight());
  EXPECT_EQ(q.bytes(), 7u);
  EXPECT_EQ(q.WriteDone(), nullptr);
  EXPECT_EQ(q.bytes(), 0u);
}

OutQueue::Message Delta(uint64_t epoch, uint64_t added) {
  auto m = std::make_shared<proto::CoordMessage>();
  m->mutable_membership()->set_epoch(epoch);
  m->mutable_membership()->add_added()->set_node_id(added);
  return m;
}

TEST(SessionQueueTest, DeltasQueuedBehindAWriteLeaveAsOne) {
  OutQueue q(QueueLimits{});
  std::string why;
  auto drop = std::make_shared<proto::CoordMessage>();
  drop->mutable_drop()->set_op_id(1);
  ASSERT_TRUE(q.Push(Delta(1, 11), 5, &why));
  EXPECT_EQ(q.StartNext()->membership().epoch(), 1u);   // alone: sent as it is
  ASSERT_TRUE(q.Push(Delta(2, 12), 5, &why));
  ASSERT_TRUE(q.Push(Delta(3, 13), 5, &why));
  ASSERT_TRUE(q.Push(drop, 5, &why));
  ASSERT_TRUE(q.Push(Delta(4, 14), 5, &why));
  OutQueue::Message m = q.WriteDone();
  ASSERT_TRUE(m->has_membership());
  EXPECT_EQ(m->membership().first_epoch(), 2u);
  EXPECT_EQ(m->membership().epoch(), 3u);
  EXPECT_EQ(m->membership().added_size(), 2);
  EXPECT_EQ(q.messages(), 3u);   // the merged one, the drop, the last delta
  EXPECT_TRUE(q.WriteDone()->has_drop());   // order across kinds is kept
  EXPECT_EQ(q.WriteDone()->membership().epoch(), 4u);
  EXPECT_EQ(q.WriteDone(), nullptr);
  EXPECT_EQ(q.bytes(), 0u);
}

}  // namespace
}  // namespace ferry::control
