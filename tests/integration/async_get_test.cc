// Client::GetAsync / GetManyAsync / WaitAny against real ferry-coord + ferryd processes.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/local_cluster.h"

namespace ferry::testing {
namespace {

using ::testing::HasSubstr;

// Far longer than any Wait below: a Get that finishes within a test finished because of what
// the test did (a Put, a Cancel), never because its own timeout ran out.
constexpr absl::Duration kLongGet = absl::Minutes(10);
constexpr absl::Duration kWait = absl::Seconds(60);

class AsyncGetTest : public ::testing::Test {
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
  void SetUp() override {
    ASSERT_NE(cluster_, nullptr);
    a_ = cluster_->Connect(0);
    b_ = cluster_->Connect(1);
    ASSERT_TRUE(a_ && b_);
  }
  // Pins held on node 1 (by every session), as ferryd counts them.
  uint64_t PinnedOnB() {
    absl::StatusOr<NodeStatus> st = b_->Status();
    EXPECT_TRUE(st.ok()) << st.status();
    return st.ok() ? st->pinned : 0;
  }
  static std::string Key(const std::string& base) {
    return base + "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  static LocalCluster* cluster_;
  std::unique_ptr<Client> a_;
  std::unique_ptr<Client> b_;
};
LocalCluster* AsyncGetTest::cluster_ = nullptr;

void ExpectBytes(const ObjectView& view, const std::vector<uint8_t>& want) {
  ASSERT_EQ(view.size(), want.size());
  EXPECT_EQ(0, std::memcmp(view.data(), want.data(), want.size()));
}

TEST_F(AsyncGetTest, GetOfAnObjectPutLaterCompletes) {
  const std::string key = Key("later");
  GetHandle h = b_->GetAsync(key, kLongGet);
  ASSERT_TRUE(h.valid());
  EXPECT_EQ(h.name().key, key);
  // The object does not exist anywhere yet, so the Get cannot have finished.
  EXPECT_FALSE(h.Ready());
  absl::StatusOr<ObjectView> early = h.Wait(absl::ZeroDuration());
  EXPECT_EQ(early.status().code(), absl::StatusCode::kDeadlineExceeded) << early.status();
  EXPECT_THAT(early.status().message(), HasSubstr("still running"));

  const std::vector<uint8_t> data = Pattern(3 << 20, 11);
  ASSERT_TRUE(a_->Put(key, data).ok());
  absl::StatusOr<ObjectView> view = h.Wait(kWait);
  ASSERT_TRUE(view.ok()) << view.status();
  ExpectBytes(*view, data);
  EXPECT_TRUE(view->info().pulled);
  EXPECT_TRUE(h.Ready());
  // The view is handed out once.
  EXPECT_EQ(h.Wait(absl::ZeroDuration()).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(AsyncGetTest, ManyGetsCompleteOutOfOrderThroughWaitAny) {
  constexpr int kCount = 5;
  std::vector<std::string> keys;
  for (int i = 0; i < kCount; ++i) keys.push_back(Key("many") + std::to_string(i));
  std::vector<GetHandle> handles = b_->GetManyAsync(keys, kLongGet);
  ASSERT_EQ(handles.size(), keys.size());
  std::vector<GetHandle*> pending;
  std::vector<int> index;   // pending[j] is handles[index[j]]
  for (int i = 0; i < kCount; ++i) {
    pending.push_back(&handles[i]);
    index.push_back(i);
  }
  // Nothing exists yet: WaitAny times out.
  EXPECT_EQ(WaitAny(pending, absl::ZeroDuration()).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  // Put them in the order 3, 1, 4, 0, 2: each time, only the one just put can be ready.
  for (int put : {3, 1, 4, 0, 2}) {
    const std::vector<uint8_t> data = Pattern((64 << 10) + put, put);
    ASSERT_TRUE(a_->Put(keys[put], data).ok());
    absl::StatusOr<size_t> ready = WaitAny(pending, kWait);
    ASSERT_TRUE(ready.ok()) << ready.status();
    ASSERT_EQ(index[*ready], put);
    absl::StatusOr<ObjectView> view = pending[*ready]->Wait(absl::ZeroDuration());
    ASSERT_TRUE(view.ok()) << view.status();
    ExpectBytes(*view, data);
    pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(*ready));
    index.erase(index.begin() + static_cast<std::ptrdiff_t>(*ready));
  }
  EXPECT_TRUE(pending.empty());
}

TEST_F(AsyncGetTest, CancelEndsAGetForAMissingObjectWithCancelled) {
  GetHandle h = b_->GetAsync(Key("never"), kLongGet);
  EXPECT_FALSE(h.Ready());
  h.Cancel();
  // Within kWait, far less than the Get's own timeout: only the cancelled RPC ends it.
  absl::StatusOr<ObjectView> view = h.Wait(kWait);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kCancelled) << view.status();
  EXPECT_THAT(view.status().message(), HasSubstr(Key("never")));
  h.Cancel();  // a no-op now
  EXPECT_TRUE(h.Ready());
}

// ferryd keeps waiting after the client cancelled; when the object then arrives, ferryd must
// not keep the pin it took for a call nobody receives.
TEST_F(AsyncGetTest, ACancelledGetLeavesNoPinWhenTheObjectArrivesLater) {
  const std::string key = Key("later");
  const uint64_t pinned_before = PinnedOnB();
  GetHandle h = b_->GetAsync(key, kLongGet);
  // Let the call reach ferryd's handler (a cancel before it is sent never reaches ferryd).
  absl::SleepFor(absl::Milliseconds(300));
  h.Cancel();
  ASSERT_EQ(h.Wait(kWait).status().code(), absl::StatusCode::kCancelled);
  // A Get of the same key by another client waits in ferryd too; once it has the object,
  // the cancelled one (woken by the same seal) has finished as well, or soon will.
  ASSERT_TRUE(a_->Put(key, Pattern(4096, 9)).ok());
  absl::StatusOr<ObjectView> other = b_->Get(key, kWait);
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(other->Release().ok());
  // ferryd's handler of the cancelled call is woken by the same seal, but nothing tells the
  // test when it has returned: watch the pin count for 2 s. Without the release, it ends one
  // higher and stays there.
  uint64_t pinned = PinnedOnB();
  for (int i = 0; i < 40; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    pinned = PinnedOnB();
  }
  EXPECT_EQ(pinned, pinned_before) << "the cancelled Get's pin is still held by ferryd";
}

TEST_F(AsyncGetTest, CancelAfterTheObjectArrivedDropsItsPin) {
  const std::string key = Key("arrived");
  ASSERT_TRUE(a_->Put(key, Pattern(1 << 20, 5)).ok());
  const uint64_t pinned_before = PinnedOnB();
  GetHandle h = b_->GetAsync(key, kLongGet);
  GetHandle* one[] = {&h};
  ASSERT_TRUE(WaitAny(one, kWait).ok());
  EXPECT_EQ(PinnedOnB(), pinned_before + 1);   // the finished Get holds its pin
  h.Cancel();                                  // too late for the RPC: Wait says CANCELLED
  EXPECT_EQ(h.Wait(kWait).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(PinnedOnB(), pinned_before);
}

TEST_F(AsyncGetTest, DestroyingAFinishedUntakenHandleDropsItsPin) {
  const std::string key = Key("untaken");
  ASSERT_TRUE(a_->Put(key, Pattern(1 << 20, 6)).ok());
  const uint64_t pinned_before = PinnedOnB();
  {
    GetHandle h = b_->GetAsync(key, kLongGet);
    GetHandle* one[] = {&h};
    ASSERT_TRUE(WaitAny(one, kWait).ok());
    EXPECT_EQ(PinnedOnB(), pinned_before + 1);
  }
  EXPECT_EQ(PinnedOnB(), pinned_before);
  // Move-assigning over a finished handle drops its pin too.
  GetHandle h = b_->GetAsync(key, kLongGet);
  GetHandle* one[] = {&h};
  ASSERT_TRUE(WaitAny(one, kWait).ok());
  h = b_->GetAsync(Key("never-assigned"), kLongGet);
  EXPECT_EQ(PinnedOnB(), pinned_before);
}

TEST_F(AsyncGetTest, DestroyingHandlesAndTheClientWithGetsPendingIsClean) {
  std::unique_ptr<Client> c = cluster_->Connect(1);
  ASSERT_TRUE(c);
  std::vector<std::string> keys;
  for (int i = 0; i < 6; ++i) keys.push_back(Key("pending") + std::to_string(i));
  std::vector<GetHandle> handles = c->GetManyAsync(keys, kLongGet);
  // Destroying an unfinished handle cancels its Get and waits for the RPC to end.
  handles.erase(handles.begin(), handles.begin() + 3);
  // Destroying the Client cancels the rest; their handles stay usable.
  c.reset();
  for (GetHandle& h : handles) {
    absl::StatusOr<ObjectView> view = h.Wait(kWait);
    EXPECT_EQ(view.status().code(), absl::StatusCode::kCancelled) << view.status();
  }
  handles.clear();
  // A new client, and a handle destroyed right after it started.
  c = cluster_->Connect(1);
  ASSERT_TRUE(c);
  { GetHandle dropped = c->GetAsync(Key("dropped"), kLongGet); }
  // And a client destroyed while a handle to it is still pending, the handle dying last.
  GetHandle last = c->GetAsync(Key("last"), kLongGet);
  c.reset();
  EXPECT_TRUE(last.Ready());
}

TEST_F(AsyncGetTest, BadInputFailsInvalidArgumentThroughTheHandle) {
  GetHandle empty_key = b_->GetAsync(std::string_view(""), kLongGet);
  EXPECT_TRUE(empty_key.Ready());
  EXPECT_EQ(empty_key.Wait(absl::ZeroDuration()).status().code(),
            absl::StatusCode::kInvalidArgument);

  ObjectName bad_ns;
  bad_ns.ns = "no spaces/allowed";
  bad_ns.key = "k";
  GetHandle bad = b_->GetAsync(bad_ns, kLongGet);
  absl::StatusOr<ObjectView> view = bad.Wait(kWait);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kInvalidArgument) << view.status();

  std::vector<GetHandle*> none;
  EXPECT_EQ(WaitAny(none, kWait).status().code(), absl::StatusCode::kInvalidArgument);
  GetHandle invalid;
  GetHandle* one[] = {&invalid};
  EXPECT_EQ(WaitAny(one, kWait).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(invalid.Wait(kWait).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(invalid.Ready());
}

TEST_F(AsyncGetTest, GetsTimeOutThroughTheHandleWithDeadlineExceeded) {
  GetHandle h = b_->GetAsync(Key("timeout"), absl::Milliseconds(300));
  absl::StatusOr<ObjectView> view = h.Wait(kWait);
  EXPECT_EQ(view.status().code(), absl::StatusCode::kDeadlineExceeded) << view.status();
  EXPECT_THAT(view.status().message(), HasSubstr(Key("timeout")));
}

}  // namespace
}  // namespace ferry::testing
