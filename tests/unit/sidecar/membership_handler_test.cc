#include "dataplane/sidecar/handlers/membership_handler.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "dataplane/transport/inproc_transport.h"
#include "gtest/gtest.h"
#include "tests/unit/sidecar/inproc_node_info.h"

namespace ferry::dataplane {
namespace {

constexpr uint64_t kSelf = 1, kP = 2, kQ = 3;

proto::Membership Snapshot(uint64_t epoch, std::initializer_list<uint64_t> ids) {
  proto::Membership m;
  m.set_epoch(epoch);
  m.set_full(true);
  for (uint64_t id : ids) *m.add_nodes() = testing::InprocNodeInfo(id);
  return m;
}

struct Fixture {
  std::shared_ptr<InprocFabric> fabric = std::make_shared<InprocFabric>();
  std::unique_ptr<InprocTransport> self = *InprocTransport::Create(fabric, kSelf);
  absl::Time now = absl::FromUnixSeconds(1000);
  MembershipHandler handler{kSelf, self.get(), [this] { return now; }};
};

TEST(MembershipHandlerTest, AfterACoordinatorRestartMissingPeersAreKeptForTheGrace) {
  Fixture f;
  f.handler.OnSessionStart();
  proto::Welcome w;
  w.set_liveness_timeout_ms(0);
  f.handler.OnWelcome(w);
  ASSERT_TRUE(f.handler.OnMembership(Snapshot(1, {kSelf, kP, kQ})).ok());
  EXPECT_TRUE(f.self->HasPeer(kP));
  EXPECT_TRUE(f.self->HasPeer(kQ));

  // The coordinator restarts: a new session, a Welcome with a 5 s liveness timeout, and a
  // snapshot in which only kP has re-registered so far.
  f.handler.OnSessionStart();
  w.set_liveness_timeout_ms(5000);
  f.handler.OnWelcome(w);
  ASSERT_TRUE(f.handler.OnMembership(Snapshot(1, {kSelf, kP})).ok());
  EXPECT_TRUE(f.self->HasPeer(kQ)) << "kQ has not re-registered yet: kept for the grace";
  EXPECT_EQ(f.handler.unconfirmed_peers().count(kQ), 1u);
  f.now += absl::Seconds(4);
  f.handler.ExpireUnconfirmedPeers();
  EXPECT_TRUE(f.self->HasPeer(kQ));
  f.now += absl::Seconds(2);
  f.handler.ExpireUnconfirmedPeers();
  EXPECT_FALSE(f.self->HasPeer(kQ)) << "past the grace a missing peer goes";
  EXPECT_TRUE(f.self->HasPeer(kP));
}

TEST(MembershipHandlerTest, AConfirmedPeerLeavesTheGraceList) {
  Fixture f;
  f.handler.OnSessionStart();
  proto::Welcome w;
  w.set_liveness_timeout_ms(5000);
  f.handler.OnWelcome(w);
  ASSERT_TRUE(f.handler.OnMembership(Snapshot(1, {kSelf, kP})).ok());
  proto::Membership without;
  without.set_epoch(2);
  without.add_removed(kP);
  ASSERT_TRUE(f.handler.OnMembership(without).ok());
  EXPECT_EQ(f.handler.unconfirmed_peers().count(kP), 1u);
  proto::Membership back;
  back.set_epoch(3);
  *back.add_added() = testing::InprocNodeInfo(kP);
  ASSERT_TRUE(f.handler.OnMembership(back).ok());
  EXPECT_TRUE(f.handler.unconfirmed_peers().empty());
  f.now += absl::Seconds(10);
  f.handler.ExpireUnconfirmedPeers();
  EXPECT_TRUE(f.self->HasPeer(kP));
}

TEST(MembershipHandlerTest, AGapIsAnErrorAndChangesNothing) {
  Fixture f;
  f.handler.OnSessionStart();
  ASSERT_TRUE(f.handler.OnMembership(Snapshot(4, {kSelf})).ok());
  proto::Membership gap;
  gap.set_epoch(6);
  *gap.add_added() = testing::InprocNodeInfo(kP);
  EXPECT_FALSE(f.handler.OnMembership(gap).ok());
  EXPECT_FALSE(f.self->HasPeer(kP));
  EXPECT_TRUE(f.handler.peers().empty());
}

}  // namespace
}  // namespace ferry::dataplane
