// Node driven without a gRPC server: the test plays the coordinator through a fake
// CoordinatorClient and the nodes move bytes over the in-process transport.
#include "dataplane/sidecar/node.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "shm/arena.h"
#include "dataplane/transport/inproc_transport.h"
#include "gtest/gtest.h"
#include "tests/unit/sidecar/inproc_node_info.h"
#include "tests/unit/sidecar/fake_coordinator_client.h"

namespace ferry::dataplane {
namespace {

using testing::FakeCoordinator;
using testing::FakeCoordinatorClient;

constexpr uint64_t kA = 11, kB = 22, kPeer = 33;
constexpr SessionId kClient = 1;

proto::CoordMessage Welcome(uint64_t id, bool was_declared_dead = false) {
  proto::CoordMessage m;
  m.mutable_welcome()->set_node_id(id);
  m.mutable_welcome()->set_heartbeat_interval_ms(60000);   // one heartbeat per session
  m.mutable_welcome()->set_liveness_timeout_ms(0);         // no removal grace
  m.mutable_welcome()->set_inline_max_bytes(1024);
  m.mutable_welcome()->set_was_declared_dead(was_declared_dead);
  return m;
}

proto::CoordMessage Snapshot(uint64_t epoch, const std::vector<uint64_t>& ids) {
  proto::CoordMessage m;
  m.mutable_membership()->set_epoch(epoch);
  m.mutable_membership()->set_full(true);
  for (uint64_t id : ids) *m.mutable_membership()->add_nodes() = testing::InprocNodeInfo(id);
  return m;
}

proto::CoordMessage Delta(uint64_t epoch, const std::vector<uint64_t>& added, const std::vector<uint64_t>& removed) {
  proto::CoordMessage m;
  m.mutable_membership()->set_epoch(epoch);
  for (uint64_t id : added) *m.mutable_membership()->add_added() = testing::InprocNodeInfo(id);
  for (uint64_t id : removed) m.mutable_membership()->add_removed(id);
  return m;
}

proto::CoordMessage Drop(const std::string& key, uint64_t incarnation, uint64_t op_id) {
  proto::CoordMessage m;
  m.mutable_drop()->mutable_ref()->set_ns("default");
  m.mutable_drop()->mutable_ref()->set_key(key);
  m.mutable_drop()->set_incarnation(incarnation);
  m.mutable_drop()->set_op_id(op_id);
  return m;
}

// One Node with a fake coordinator on a shared in-process fabric.
struct TestNode {
  std::shared_ptr<FakeCoordinator> coord = std::make_shared<FakeCoordinator>();
  std::unique_ptr<Node> node;
  uint64_t next_sync = 1000;

  static std::unique_ptr<TestNode> Make(const std::shared_ptr<InprocFabric>& fabric, uint64_t id) {
    auto t = std::make_unique<TestNode>();
    absl::StatusOr<std::unique_ptr<InprocTransport>> transport = InprocTransport::Create(fabric, id);
    EXPECT_TRUE(transport.ok()) << transport.status();
    absl::StatusOr<std::unique_ptr<shm::Arena>> arena = shm::Arena::Create(absl::StrCat("node-test-", id), 4 << 20, true);
    EXPECT_TRUE(arena.ok()) << arena.status();
    if (!transport.ok() || !arena.ok()) return nullptr;
    NodeOptions options;
    options.name = absl::StrCat("n", id);
    options.node_id = id;
    // As ferryd does: the arena is the transport's one registered host region.
    absl::StatusOr<MemoryRegion> region =
        (*transport)->RegisterMemory(MemoryKind::kHost, (*arena)->base(), (*arena)->size());
    EXPECT_TRUE(region.ok()) << region.status();
    if (!region.ok()) return nullptr;
    options.arena_region = region->id;
    absl::StatusOr<std::unique_ptr<Node>> node = Node::Create(options, std::move(*arena), std::move(*transport),
                                                              std::make_unique<FakeCoordinatorClient>(t->coord));
    EXPECT_TRUE(node.ok()) << node.status();
    if (!node.ok()) return nullptr;
    t->node = std::move(*node);
    return t;
  }

  // Starts the session and registers: Welcome, then a membership snapshot of `members`.
  void Register(const std::vector<uint64_t>& members) {
    node->Start();
    ASSERT_TRUE(coord->WaitSessions(1));
    coord->Push(Welcome(node->node_id()));
    coord->Push(Snapshot(1, members));
    ASSERT_TRUE(node->WaitRegistered(absl::Seconds(20)).ok());
    Sync();
  }

  // Returns once the node has handled every message pushed before: the session handles
  // messages in order, and a DropInstruction with an op_id is answered on the session.
  void Sync() {
    const uint64_t op = ++next_sync;
    coord->Push(Drop("sync-marker", 0, op));
    ASSERT_TRUE(coord->WaitDropDone(op)) << "the node never answered the sync marker";
  }

  // Creates, fills and seals an object on this node; returns its incarnation.
  uint64_t Put(const std::string& key, const std::string& bytes) {
    StoredMeta meta;
    meta.size = bytes.size();
    absl::StatusOr<uint64_t> offset = node->CreateObject("default", key, meta, kClient);
    EXPECT_TRUE(offset.ok()) << offset.status();
    if (!offset.ok()) return 0;
    std::memcpy(node->arena().base() + *offset, bytes.data(), bytes.size());
    EXPECT_TRUE(node->Seal("default", key, kClient).ok());
    absl::StatusOr<PinnedObject> pin = node->store().PinInternal("default", key);
    EXPECT_TRUE(pin.ok()) << pin.status();
    if (!pin.ok()) return 0;
    node->store().Unpin(*pin);
    return pin->meta.incarnation;
  }

  std::string Read(const std::string& key) {
    absl::StatusOr<GetResult> got = node->Get("default", key, kClient, absl::Now() + absl::Seconds(5));
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok()) return "";
    std::string out(reinterpret_cast<const char*>(node->arena().base() + got->pin.offset), got->pin.meta.size);
    node->store().Unpin(got->pin);
    return out;
  }
};

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) & 0xff);
  return s;
}

TEST(NodeTest, PullInstructionPullsFromThePlannedSenderAndReportsWithTheBroadcastId) {
  auto fabric = std::make_shared<InprocFabric>();
  std::unique_ptr<TestNode> a = TestNode::Make(fabric, kA);
  std::unique_ptr<TestNode> b = TestNode::Make(fabric, kB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  a->Register({kA, kB});
  b->Register({kA, kB});
  ASSERT_TRUE(a->node->transport().HasPeer(kB));
  ASSERT_TRUE(b->node->transport().HasPeer(kA));

  const std::string bytes = Pattern(300000);   // over inline_max: pulled in chunks
  const uint64_t incarnation = a->Put("big", bytes);
  ASSERT_EQ(a->coord->published().size(), 1u);

  proto::CoordMessage m;
  proto::PullInstruction* pull = m.mutable_pull();
  pull->mutable_ref()->set_ns("default");
  pull->mutable_ref()->set_key("big");
  pull->set_broadcast_id(77);
  pull->set_deadline_unix_ms(absl::ToUnixMillis(absl::Now() + absl::Seconds(20)));
  proto::AcquireSourceReply* source = pull->mutable_source();
  source->mutable_meta()->set_size(bytes.size());
  source->mutable_meta()->set_incarnation(incarnation);
  source->set_sender(kA);
  source->set_sender_address(std::to_string(kA));
  source->set_chunk_size(64 << 10);
  source->set_window(4);
  source->set_sender_complete(true);
  b->coord->Push(m);

  proto::ReportTransferRequest report;
  ASSERT_TRUE(b->coord->WaitReport(
      [](const proto::ReportTransferRequest& r) { return r.ref().key() == "big"; }, &report));
  EXPECT_EQ(report.outcome(), proto::ReportTransferRequest::COMPLETED) << report.detail();
  EXPECT_EQ(report.op_id(), 77u) << "the report must name the instruction's operation";
  EXPECT_EQ(report.sender(), kA);
  EXPECT_EQ(report.node_id(), kB);
  EXPECT_EQ(report.incarnation(), incarnation);
  EXPECT_EQ(report.bytes(), bytes.size());
  EXPECT_EQ(b->Read("big"), bytes);
  EXPECT_EQ(b->node->counters().pulls.load(), 1u);
  b->node->Shutdown();
  a->node->Shutdown();
}

TEST(NodeTest, GetReportsWithOperationIdZero) {
  auto fabric = std::make_shared<InprocFabric>();
  std::unique_ptr<TestNode> a = TestNode::Make(fabric, kA);
  std::unique_ptr<TestNode> b = TestNode::Make(fabric, kB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  a->Register({kA, kB});
  b->Register({kA, kB});
  const std::string bytes = Pattern(100000);
  const uint64_t incarnation = a->Put("get-me", bytes);
  b->coord->acquire = [&](const proto::AcquireSourceRequest& req, proto::AcquireSourceReply* reply) {
    EXPECT_EQ(req.node_id(), kB);
    reply->mutable_meta()->set_size(bytes.size());
    reply->mutable_meta()->set_incarnation(incarnation);
    reply->set_sender(kA);
    reply->set_sender_address(std::to_string(kA));
    reply->set_chunk_size(32 << 10);
    reply->set_window(2);
    return absl::OkStatus();
  };
  EXPECT_EQ(b->Read("get-me"), bytes);
  proto::ReportTransferRequest report;
  ASSERT_TRUE(b->coord->WaitReport([](const proto::ReportTransferRequest& r) { return r.ref().key() == "get-me"; },
                                   &report));
  EXPECT_EQ(report.outcome(), proto::ReportTransferRequest::COMPLETED);
  EXPECT_EQ(report.op_id(), 0u);
  b->node->Shutdown();
  a->node->Shutdown();
}

TEST(NodeTest, InlinePullInstructionStoresTheBytesAndReports) {
  auto fabric = std::make_shared<InprocFabric>();
  std::unique_ptr<TestNode> a = TestNode::Make(fabric, kA);
  ASSERT_NE(a, nullptr);
  a->Register({kA});
  proto::CoordMessage m;
  proto::PullInstruction* pull = m.mutable_pull();
  pull->mutable_ref()->set_ns("default");
  pull->mutable_ref()->set_key("small");
  pull->set_broadcast_id(5);
  pull->set_is_inline(true);
  pull->mutable_meta()->set_size(3);
  pull->mutable_meta()->set_incarnation(9);
  pull->set_inline_data("abc");
  a->coord->Push(m);
  proto::ReportTransferRequest report;
  ASSERT_TRUE(a->coord->WaitReport([](const proto::ReportTransferRequest& r) { return r.ref().key() == "small"; },
                                   &report));
  EXPECT_EQ(report.outcome(), proto::ReportTransferRequest::COMPLETED) << report.detail();
  EXPECT_EQ(report.op_id(), 5u);
  EXPECT_EQ(report.incarnation(), 9u);
  // It came on the session stream, not by the RPC.
  ASSERT_EQ(a->coord->session_reports().size(), 1u);
  EXPECT_EQ(a->coord->session_reports()[0].ref().key(), "small");
  EXPECT_TRUE(a->coord->reports().empty());
  EXPECT_EQ(a->Read("small"), "abc");
  a->node->Shutdown();
}

TEST(NodeTest, DropInstructionDropsTheCopyAndAnswersDropDoneOnlyWhenAsked) {
  auto fabric = std::make_shared<InprocFabric>();
  std::unique_ptr<TestNode> a = TestNode::Make(fabric, kA);
  ASSERT_NE(a, nullptr);
  a->Register({kA});
  const uint64_t incarnation = a->Put("doomed", "bytes");
  const uint64_t other = a->Put("kept", "other");
  ASSERT_TRUE(a->node->store().Contains("default", "doomed"));

  a->coord->Push(Drop("kept", other + 1, 0));   // another incarnation: not this copy
  a->coord->Push(Drop("doomed", incarnation, 0));   // op_id 0: no DropDone wanted
  a->Sync();
  EXPECT_FALSE(a->node->store().Contains("default", "doomed"));
  EXPECT_TRUE(a->node->store().Contains("default", "kept"));
  EXPECT_TRUE(a->node->store().IsDropped("default", "doomed", incarnation));

  a->coord->Push(Drop("kept", other, 42));
  ASSERT_TRUE(a->coord->WaitDropDone(42));
  EXPECT_FALSE(a->node->store().Contains("default", "kept"));
  // Only the markers and 42 were answered.
  for (uint64_t op : a->coord->drop_dones()) EXPECT_TRUE(op == 42 || op > 1000) << op;
  a->node->Shutdown();
}

TEST(NodeTest, MembershipDeltasAddAndRemovePeersAndAGapReconnects) {
  auto fabric = std::make_shared<InprocFabric>();
  std::unique_ptr<TestNode> a = TestNode::Make(fabric, kA);
  ASSERT_NE(a, nullptr);
  absl::StatusOr<std::unique_ptr<InprocTransport>> peer = InprocTransport::Create(fabric, kPeer);
  ASSERT_TRUE(peer.ok());
  a->Register({kA});
  EXPECT_FALSE(a->node->transport().HasPeer(kPeer));

  a->coord->Push(Delta(2, {kPeer}, {}));
  a->Sync();
  EXPECT_TRUE(a->node->transport().HasPeer(kPeer));
  EXPECT_EQ(a->node->membership().peers().count(kPeer), 1u);

  a->coord->Push(Delta(3, {}, {kPeer}));
  a->Sync();
  EXPECT_FALSE(a->node->transport().HasPeer(kPeer));

  // Epoch 5 does not follow 3: the view cannot be trusted; the node ends the session and
  // opens a new one (which will start with a snapshot).
  a->coord->Push(Delta(5, {kPeer}, {}));
  ASSERT_TRUE(a->coord->WaitCancelled());
  ASSERT_TRUE(a->coord->WaitSessions(2));
  EXPECT_FALSE(a->node->transport().HasPeer(kPeer)) << "a delta after a gap must not be applied";
  a->coord->Push(Welcome(kA));
  a->coord->Push(Snapshot(7, {kA, kPeer}));
  a->Sync();
  EXPECT_TRUE(a->node->transport().HasPeer(kPeer));
  a->node->Shutdown();
}

// A fetch from `self` to `peer` that `peer` never answers: it completes only when the
// connection is reset (or at shutdown). The one place this test uses the transport's Fetch.
class HeldFetch {
 public:
  // Installs `peer`'s fetch handler (before any traffic).
  explicit HeldFetch(InprocTransport& peer) : peer_(peer.self()) {
    peer.SetFetchHandler([this](NodeId, std::string_view, std::unique_ptr<FetchResponder> r) {
      absl::MutexLock lock(&mu_);
      held_.push_back(std::move(r));
    });
  }
  void Start(Transport& self) {
    absl::StatusOr<MemoryRegion> region = self.RegisterMemory(MemoryKind::kHost, buf_, sizeof(buf_));
    ASSERT_TRUE(region.ok()) << region.status();
    self.Fetch(peer_, "hold", LocalSlice{region->id, 0, sizeof(buf_)}, [this](absl::Status s) {
      status_ = std::move(s);
      done_.Notify();
    });
  }
  ~HeldFetch() {
    absl::MutexLock lock(&mu_);
    for (auto& r : held_) r->Fail(absl::CancelledError("test over"));
  }
  bool WaitHeld() {
    absl::MutexLock lock(&mu_);
    auto held = [this] {
      mu_.AssertHeld();
      return !held_.empty();
    };
    return mu_.AwaitWithTimeout(absl::Condition(&held), absl::Seconds(20));
  }
  bool done() const { return done_.HasBeenNotified(); }
  bool WaitDone() { return done_.WaitForNotificationWithTimeout(absl::Seconds(20)); }
  const absl::Status& status() const { return status_; }

 private:
  const NodeId peer_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<FetchResponder>> held_ ABSL_GUARDED_BY(mu_);
  char buf_[16];
  absl::Status status_;   // written before done_ is notified
  absl::Notification done_;
};

TEST(NodeTest, SessionDropReconnectsAndWasDeclaredDeadResetsPeerConnections) {
  auto fabric = std::make_shared<InprocFabric>();
  std::unique_ptr<TestNode> a = TestNode::Make(fabric, kA);
  ASSERT_NE(a, nullptr);
  absl::StatusOr<std::unique_ptr<InprocTransport>> peer = InprocTransport::Create(fabric, kPeer);
  ASSERT_TRUE(peer.ok());
  HeldFetch fetch(**peer);
  ASSERT_TRUE((*peer)->AddPeer(kA, std::to_string(kA)).ok());
  a->Register({kA, kPeer});
  ASSERT_TRUE(a->node->transport().HasPeer(kPeer));
  a->Put("held", "kept across sessions");

  fetch.Start(a->node->transport());
  ASSERT_TRUE(fetch.WaitHeld());

  // The session drops (coordinator restart): the node reconnects and re-reports its copies.
  a->coord->EndSession(absl::UnavailableError("connection reset"));
  ASSERT_TRUE(a->coord->WaitSessions(2));
  const proto::Hello hello = a->coord->hellos().back();
  ASSERT_EQ(hello.holdings_size(), 1);
  EXPECT_EQ(hello.holdings(0).ref().key(), "held");
  EXPECT_EQ(hello.holdings(0).inline_data(), "kept across sessions");
  EXPECT_EQ(hello.node().node_id(), kA);
  EXPECT_EQ(hello.session_secret(), a->coord->hellos().front().session_secret());

  // A plain Welcome keeps the connections ...
  a->coord->Push(Welcome(kA));
  a->coord->Push(Snapshot(1, {kA, kPeer}));
  a->Sync();
  EXPECT_FALSE(fetch.done());
  // ... one after our death resets them: the held fetch fails at once.
  a->coord->EndSession(absl::UnavailableError("connection reset"));
  ASSERT_TRUE(a->coord->WaitSessions(3));
  a->coord->Push(Welcome(kA, /*was_declared_dead=*/true));
  ASSERT_TRUE(fetch.WaitDone()) << "was_declared_dead did not reset the peer connection";
  EXPECT_EQ(fetch.status().code(), absl::StatusCode::kUnavailable) << fetch.status();
  EXPECT_TRUE(a->node->transport().HasPeer(kPeer)) << "a reset keeps the peer";
  a->node->Shutdown();
  (*peer)->Shutdown();
}

TEST(NodeTest, RefusedRegistrationIsReportedByWaitRegistered) {
  auto fabric = std::make_shared<InprocFabric>();
  std::unique_ptr<TestNode> a = TestNode::Make(fabric, kA);
  ASSERT_NE(a, nullptr);
  a->node->Start();
  ASSERT_TRUE(a->coord->WaitSessions(1));
  a->coord->EndSession(absl::AlreadyExistsError("name n11 is in use"));
  absl::Status s = a->node->WaitRegistered(absl::Seconds(20));
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_NE(s.message().find("name n11 is in use"), std::string::npos) << s;
  EXPECT_NE(s.message().find("fake-coordinator"), std::string::npos) << s;
  a->node->Shutdown();
}

}  // namespace
}  // namespace ferry::dataplane
