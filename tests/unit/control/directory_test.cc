// Tests of control/directory/directory.h.
#include "control/directory/directory.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "tests/unit/control/proto_builders.h"
#include "gtest/gtest.h"

namespace ferry::control {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kBig = 1 << 20;   // above the inline limit

proto::ObjectRef Ref(const std::string& ns, const std::string& key) { return testing::TestRef(key, ns); }

proto::ObjectMeta Meta(uint64_t size) { return testing::TestMeta(size); }

class DirectoryTest : public ::testing::Test {
 protected:
  absl::Status PublishBig(NodeId node, const std::string& key, uint64_t size = kBig, bool rereport = false) {
    return dir_.Publish(node, Ref("ns", key), Meta(size), "", LinkModel{}, /*receivers=*/4, rereport);
  }
  Directory dir_{DirectoryOptions{}};
};

TEST_F(DirectoryTest, PublishAcquireCompletedLocate) {
  ASSERT_TRUE(PublishBig(1, "k").ok());
  EXPECT_EQ(dir_.size(), 1u);
  EXPECT_TRUE(dir_.IsComplete(1, Ref("ns", "k")));
  absl::StatusOr<AcquireResult> a = dir_.Acquire(2, Ref("ns", "k"), {});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->is_inline);
  EXPECT_EQ(a->sender, 1u);
  EXPECT_EQ(a->meta.size(), kBig);
  EXPECT_GT(a->chunk_size, 0u);
  EXPECT_GE(a->window, 2u);
  EXPECT_FALSE(dir_.IsComplete(2, Ref("ns", "k")));

  absl::StatusOr<proto::LocateReply> loc = dir_.Locate(Ref("ns", "k"));
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->meta().size(), kBig);
  EXPECT_EQ(loc->chunk_size(), a->chunk_size);
  ASSERT_EQ(loc->copies_size(), 2);
  EXPECT_EQ(loc->copies(0).node_id(), 1u);
  EXPECT_TRUE(loc->copies(0).complete());
  EXPECT_EQ(loc->copies(0).depth(), 0u);
  EXPECT_EQ(loc->copies(1).node_id(), 2u);
  EXPECT_FALSE(loc->copies(1).complete());
  EXPECT_EQ(loc->copies(1).depth(), 1u);

  EXPECT_TRUE(dir_.Completed(2, Ref("ns", "k"), 0));
  EXPECT_TRUE(dir_.IsComplete(2, Ref("ns", "k")));
  loc = dir_.Locate(Ref("ns", "k"));
  ASSERT_TRUE(loc.ok());
  for (const proto::CopyInfo& c : loc->copies()) {
    EXPECT_TRUE(c.complete());
    EXPECT_EQ(c.serving(), 0u);
  }
  // A complete holder that asks again is told it holds the object itself (a Get waiting
  // for a key that was then put on the same node).
  absl::StatusOr<AcquireResult> again = dir_.Acquire(2, Ref("ns", "k"), {});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->receiver_has_copy);
  EXPECT_EQ(again->sender, 0u);
}

TEST_F(DirectoryTest, UnknownObject) {
  absl::StatusOr<AcquireResult> a = dir_.Acquire(2, Ref("ns", "nope"), {});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(a.status().message(), HasSubstr("ns/nope"));
  EXPECT_EQ(dir_.Locate(Ref("ns", "nope")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(dir_.Delete(Ref("ns", "nope")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(dir_.IsComplete(1, Ref("ns", "nope")));
  EXPECT_TRUE(dir_.Completed(1, Ref("ns", "nope"), 7));   // no-ops (not known as deleted)
  dir_.SenderFailed(1, Ref("ns", "nope"));
  dir_.Aborted(1, Ref("ns", "nope"));
  dir_.Unpublish(1, "n1", Ref("ns", "nope"), /*evicted=*/true);
  EXPECT_EQ(dir_.size(), 0u);
}

TEST_F(DirectoryTest, PublishValidatesNames) {
  EXPECT_EQ(dir_.Publish(1, Ref("bad ns", "k"), Meta(kBig), "", LinkModel{}, 1).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dir_.Publish(1, Ref("ns", ""), Meta(kBig), "", LinkModel{}, 1).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DirectoryTest, InlineObjectsAreReturnedInline) {
  ASSERT_TRUE(dir_.Publish(1, Ref("ns", "small"), Meta(5), "hello", LinkModel{}, 3).ok());
  absl::StatusOr<AcquireResult> a = dir_.Acquire(2, Ref("ns", "small"), {});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->is_inline);
  EXPECT_EQ(a->inline_data, "hello");
  EXPECT_EQ(a->sender, 0u);
  // Inline acquires take no slot: any number of receivers. Each is recorded as an unplanned
  // partial copy that serves no one (so that a Delete reaches it).
  for (NodeId n = 3; n < 10; ++n) ASSERT_TRUE(dir_.Acquire(n, Ref("ns", "small"), {}).ok());
  absl::StatusOr<proto::LocateReply> loc = dir_.Locate(Ref("ns", "small"));
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->copies_size(), 9);
  for (const proto::CopyInfo& c : loc->copies()) {
    EXPECT_EQ(c.complete(), c.node_id() == 1) << c.node_id();
    EXPECT_EQ(c.serving(), 0u) << c.node_id();
  }
  // Empty objects are inline too.
  ASSERT_TRUE(dir_.Publish(1, Ref("ns", "empty"), Meta(0), "", LinkModel{}, 3).ok());
  a = dir_.Acquire(2, Ref("ns", "empty"), {});
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->is_inline);
  EXPECT_EQ(a->inline_data, "");
}

TEST_F(DirectoryTest, InlineObjectWithoutItsBytesIsRejected) {
  absl::Status s = dir_.Publish(1, Ref("ns", "small"), Meta(5), "hel", LinkModel{}, 3);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("ns/small"));
  EXPECT_EQ(dir_.size(), 0u);
}

TEST_F(DirectoryTest, SizeMismatchIsAlreadyExistsNamingBothSizes) {
  ASSERT_TRUE(PublishBig(1, "k", kBig).ok());
  absl::Status s = PublishBig(2, "k", kBig + 1);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr(std::to_string(kBig)));
  EXPECT_THAT(s.message(), HasSubstr(std::to_string(kBig + 1)));
  EXPECT_FALSE(dir_.IsComplete(2, Ref("ns", "k")));
  // Same size from a node holding no copy: keys are unique cluster-wide.
  EXPECT_EQ(PublishBig(2, "k", kBig).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(dir_.IsComplete(2, Ref("ns", "k")));
  // A node re-reporting a copy it held (after a coordinator restart) adds a complete copy.
  ASSERT_TRUE(PublishBig(2, "k", kBig, /*rereport=*/true).ok());
  EXPECT_TRUE(dir_.IsComplete(2, Ref("ns", "k")));
  ASSERT_TRUE(PublishBig(2, "k", kBig).ok()) << "re-publish by a holder is idempotent";
}

TEST_F(DirectoryTest, ListByPrefixWithLimit) {
  for (const char* k : {"a/1", "a/2", "a/3", "b/1", "ab"}) ASSERT_TRUE(PublishBig(1, k).ok());
  ASSERT_TRUE(dir_.Publish(1, Ref("other", "a/9"), Meta(kBig), "", LinkModel{}, 1).ok());
  auto keys = [](const std::vector<proto::ListEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& e : entries) out.push_back(e.ref().key());
    return out;
  };
  EXPECT_THAT(keys(dir_.List("ns", "a/", 0)), ElementsAre("a/1", "a/2", "a/3"));
  EXPECT_THAT(keys(dir_.List("ns", "a", 0)), ElementsAre("a/1", "a/2", "a/3", "ab"));
  EXPECT_THAT(keys(dir_.List("ns", "a/", 2)), ElementsAre("a/1", "a/2"));
  EXPECT_THAT(keys(dir_.List("ns", "", 0)), ElementsAre("a/1", "a/2", "a/3", "ab", "b/1"));
  EXPECT_THAT(keys(dir_.List("ns", "zzz", 0)), ElementsAre());
  EXPECT_THAT(keys(dir_.List("other", "", 0)), ElementsAre("a/9"));
  EXPECT_THAT(keys(dir_.List("none", "", 0)), ElementsAre());
  std::vector<proto::ListEntry> one = dir_.List("ns", "b/1", 0);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].ref().ns(), "ns");
  EXPECT_EQ(one[0].meta().size(), kBig);
  EXPECT_EQ(one[0].complete_copies(), 1u);
  EXPECT_EQ(one[0].partial_copies(), 0u);
}

TEST_F(DirectoryTest, DeleteReturnsHolders) {
  ASSERT_TRUE(PublishBig(1, "k").ok());
  ASSERT_TRUE(PublishBig(3, "k", kBig, /*rereport=*/true).ok());
  ASSERT_TRUE(dir_.Acquire(2, Ref("ns", "k"), {}).ok());
  absl::StatusOr<Directory::Deleted> holders = dir_.Delete(Ref("ns", "k"));
  ASSERT_TRUE(holders.ok());
  EXPECT_THAT(holders->holders, UnorderedElementsAre(1u, 2u, 3u));
  EXPECT_EQ(dir_.size(), 0u);
  EXPECT_EQ(dir_.Acquire(4, Ref("ns", "k"), {}).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DirectoryTest, RemoveNodeOfOnlyCompleteHolderLosesTheObject) {
  ASSERT_TRUE(PublishBig(1, "k").ok());
  ASSERT_TRUE(PublishBig(1, "k2").ok());
  ASSERT_TRUE(PublishBig(2, "k2", kBig, /*rereport=*/true).ok());   // k2 has a second holder
  ASSERT_TRUE(dir_.Publish(1, Ref("ns", "tiny"), Meta(3), "abc", LinkModel{}, 1).ok());
  ASSERT_TRUE(dir_.Acquire(3, Ref("ns", "k"), {}).ok());   // a partial copy on node 3

  std::vector<Directory::Key> lost = dir_.RemoveNode(1, "gpu-host-17");
  EXPECT_THAT(lost, ElementsAre(Directory::Key{"ns", "k"}));
  absl::StatusOr<AcquireResult> a = dir_.Acquire(4, Ref("ns", "k"), {});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(), HasSubstr("gpu-host-17"));
  EXPECT_THAT(a.status().message(), HasSubstr("ns/k"));
  absl::StatusOr<proto::LocateReply> loc = dir_.Locate(Ref("ns", "k"));
  EXPECT_EQ(loc.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loc.status().message(), HasSubstr("gpu-host-17"));
  // Lost objects are not listed; the others are.
  std::vector<proto::ListEntry> listed = dir_.List("ns", "", 0);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].ref().key(), "k2");
  EXPECT_EQ(listed[1].ref().key(), "tiny");
  // k2 still has node 2; tiny is inline and survives its holder.
  absl::StatusOr<AcquireResult> k2 = dir_.Acquire(4, Ref("ns", "k2"), {});
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(k2->sender, 2u);
  EXPECT_TRUE(dir_.Acquire(4, Ref("ns", "tiny"), {}).ok());
  // Re-publishing revives the lost object.
  ASSERT_TRUE(PublishBig(5, "k").ok());
  absl::StatusOr<AcquireResult> revived = dir_.Acquire(4, Ref("ns", "k"), {});
  ASSERT_TRUE(revived.ok()) << revived.status();
  EXPECT_EQ(revived->sender, 5u);
}

TEST_F(DirectoryTest, UnpublishLastCopy) {
  ASSERT_TRUE(PublishBig(1, "k").ok());
  dir_.Unpublish(1, "n1", Ref("ns", "k"), /*evicted=*/false);
  EXPECT_EQ(dir_.size(), 0u) << "no copy left at all: the entry goes";
  ASSERT_TRUE(PublishBig(1, "k").ok());
  ASSERT_TRUE(dir_.Acquire(2, Ref("ns", "k"), {}).ok());
  dir_.Unpublish(1, "n1", Ref("ns", "k"), /*evicted=*/false);
  absl::StatusOr<AcquireResult> a = dir_.Acquire(3, Ref("ns", "k"), {});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(), HasSubstr("n1 (id 1)"));
}

TEST_F(DirectoryTest, EvictingTheLastCopyIsNamedInLaterErrors) {
  ASSERT_TRUE(PublishBig(1, "k").ok());
  dir_.Unpublish(1, "gpu-host-3", Ref("ns", "k"), /*evicted=*/true);
  absl::StatusOr<AcquireResult> a = dir_.Acquire(2, Ref("ns", "k"), {});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(a.status().message(), HasSubstr("evicted from node gpu-host-3"));
  EXPECT_EQ(dir_.Locate(Ref("ns", "k")).status().code(), absl::StatusCode::kDataLoss);
  // Evicting one of two copies loses nothing.
  ASSERT_TRUE(PublishBig(1, "two").ok());
  ASSERT_TRUE(PublishBig(2, "two", kBig, /*rereport=*/true).ok());
  dir_.Unpublish(1, "gpu-host-3", Ref("ns", "two"), /*evicted=*/true);
  absl::StatusOr<AcquireResult> b = dir_.Acquire(3, Ref("ns", "two"), {});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->sender, 2u);
}

proto::ObjectMeta MetaInc(uint64_t size, uint64_t incarnation) {
  proto::ObjectMeta meta = Meta(size);
  meta.set_incarnation(incarnation);
  return meta;
}

TEST_F(DirectoryTest, DeletedIncarnationNeverComesBack) {
  ASSERT_TRUE(dir_.Publish(1, Ref("ns", "k"), MetaInc(kBig, 41), "", LinkModel{}, 4).ok());
  ASSERT_TRUE(dir_.Acquire(2, Ref("ns", "k"), {}).ok());   // node 2 is pulling
  absl::StatusOr<Directory::Deleted> d = dir_.Delete(Ref("ns", "k"));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->incarnation, 41u);
  EXPECT_THAT(d->holders, UnorderedElementsAre(1u, 2u));
  EXPECT_TRUE(dir_.WasDeleted(Ref("ns", "k"), 41));
  EXPECT_FALSE(dir_.WasDeleted(Ref("ns", "k"), 42));
  EXPECT_FALSE(dir_.WasDeleted(Ref("ns", "k"), 0));
  // Node 2's pull finishes after the delete: its copy is of a deleted incarnation.
  EXPECT_FALSE(dir_.Completed(2, Ref("ns", "k"), 41));
  // A re-registration that re-reports it is refused (the caller drops the copy).
  absl::Status re = dir_.Publish(2, Ref("ns", "k"), MetaInc(kBig, 41), "", LinkModel{}, 4, /*rereport=*/true);
  EXPECT_EQ(re.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(re.message(), HasSubstr("deleted"));
  EXPECT_EQ(dir_.size(), 0u);
  // The key may be created again (a new incarnation); stale copies of the old one are refused.
  ASSERT_TRUE(dir_.Publish(3, Ref("ns", "k"), MetaInc(kBig, 43), "", LinkModel{}, 4).ok());
  EXPECT_FALSE(dir_.Completed(2, Ref("ns", "k"), 41));
  EXPECT_EQ(dir_.Publish(2, Ref("ns", "k"), MetaInc(kBig, 41), "", LinkModel{}, 4, true).code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(dir_.Publish(4, Ref("ns", "k"), MetaInc(kBig, 43), "", LinkModel{}, 4, true).ok());
}

TEST_F(DirectoryTest, InlineReceiversAreHoldersForDelete) {
  ASSERT_TRUE(dir_.Publish(1, Ref("ns", "tiny"), MetaInc(3, 9), "abc", LinkModel{}, 4).ok());
  absl::StatusOr<AcquireResult> a = dir_.Acquire(2, Ref("ns", "tiny"), {});
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->is_inline);
  // Node 2 holds the bytes from the reply before it reports anything: Delete must reach it.
  absl::StatusOr<Directory::Deleted> d = dir_.Delete(Ref("ns", "tiny"));
  ASSERT_TRUE(d.ok());
  EXPECT_THAT(d->holders, UnorderedElementsAre(1u, 2u));
  EXPECT_FALSE(dir_.Completed(2, Ref("ns", "tiny"), 9));
}

TEST_F(DirectoryTest, SenderFailedAndAbortedDetachTheReceiver) {
  ASSERT_TRUE(PublishBig(1, "k").ok());
  ASSERT_TRUE(PublishBig(2, "k", kBig, /*rereport=*/true).ok());
  absl::StatusOr<AcquireResult> a = dir_.Acquire(3, Ref("ns", "k"), {});
  ASSERT_TRUE(a.ok());
  const NodeId first = a->sender;
  dir_.SenderFailed(3, Ref("ns", "k"));
  absl::StatusOr<AcquireResult> b = dir_.Acquire(3, Ref("ns", "k"), {first});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(b->sender, first);
  dir_.Aborted(3, Ref("ns", "k"));
  absl::StatusOr<proto::LocateReply> loc = dir_.Locate(Ref("ns", "k"));
  ASSERT_TRUE(loc.ok());
  EXPECT_EQ(loc->copies_size(), 2) << "an aborted receiver has no copy";
  for (const proto::CopyInfo& c : loc->copies()) EXPECT_EQ(c.serving(), 0u);
}

TEST_F(DirectoryTest, PlanFollowsOptionsLimits) {
  DirectoryOptions options;
  options.limits.fixed_chunk = 256 * 1024;
  options.inline_max_bytes = 0;
  Directory dir(options);
  ASSERT_TRUE(dir.Publish(1, Ref("ns", "k"), Meta(100), "", LinkModel{}, 2).ok());
  absl::StatusOr<AcquireResult> a = dir.Acquire(2, Ref("ns", "k"), {});
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->is_inline);
  EXPECT_EQ(a->chunk_size, 256u * 1024);
}

}  // namespace
}  // namespace ferry::control
