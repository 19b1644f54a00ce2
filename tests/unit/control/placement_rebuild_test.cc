// PlacementService across a restart, over real in-process gRPC: incarnations (ABORTED for a
// stale one), the rebuild window (nothing granted, UNAVAILABLE for a deadline inside it), lease
// reports (RESTORED / NOT_YET / REFUSED and bad reports), the holders file closing the window
// early; and the batch calls and the WatchLeases stream.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "control/placement/holders_file.h"
#include "control/placement/placement_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ferry::control::placement {
namespace {

using ::testing::HasSubstr;

// One coordinator life: a service on its own server.
class Life {
 public:
  explicit Life(PlacementServiceOptions options) : service_(std::make_unique<PlacementService>(options)) {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    stub_ = pb::Placement::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  }
  ~Life() {
    service_->Shutdown();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  }
  void AddNode(uint64_t id, double tok) {
    proto::NodeInfo node;
    node.set_node_id(id);
    node.set_name(absl::StrCat("n", id));
    (*node.mutable_resources())["tok"] = tok;
    service_->OnMembership(node, /*alive=*/true);
  }
  PlacementService& service() { return *service_; }
  pb::Placement::Stub& stub() { return *stub_; }

  grpc::Status Acquire(const std::string& holder, double tok, uint32_t timeout_ms, pb::AcquireReply* reply) {
    grpc::ClientContext ctx;
    return stub_->Acquire(&ctx, Tok(holder, tok, timeout_ms), reply);
  }
  grpc::Status Renew(const pb::Lease& lease, uint64_t incarnation) {
    grpc::ClientContext ctx;
    pb::RenewRequest req;
    req.set_lease_id(lease.lease_id());
    req.set_holder(lease.holder());
    req.set_incarnation(incarnation);
    pb::RenewReply reply;
    return stub_->Renew(&ctx, req, &reply);
  }
  grpc::Status Report(const std::string& holder, const std::vector<pb::Lease>& leases, pb::ReportLeasesReply* reply) {
    grpc::ClientContext ctx;
    pb::ReportLeasesRequest req;
    req.set_holder(holder);
    for (const pb::Lease& l : leases) *req.add_leases() = l;
    return stub_->ReportLeases(&ctx, req, reply);
  }
  static pb::AcquireRequest Tok(const std::string& holder, double tok, uint32_t timeout_ms) {
    pb::AcquireRequest req;
    req.set_holder(holder);
    req.set_timeout_ms(timeout_ms);
    (*req.add_alternatives()->add_bundles()->mutable_amounts())["tok"] = tok;
    return req;
  }

 private:
  std::unique_ptr<PlacementService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<pb::Placement::Stub> stub_;
};

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name, "-", getpid());
}

PlacementServiceOptions Rebuilding(const std::string& holders, absl::Duration window) {
  PlacementServiceOptions o;
  o.rebuild = window;
  o.holders_file = holders;
  return o;
}

TEST(PlacementRebuildTest, ReportedLeasesAreRestoredAndNothingIsGrantedMeanwhile) {
  const std::string holders = TempPath("holders-restore");
  std::remove(holders.c_str());
  pb::Lease held;
  uint64_t first = 0;
  {
    Life before(Rebuilding(holders, absl::Seconds(5)));  // no file yet: nothing to rebuild
    before.AddNode(7, 2);
    pb::AcquireReply reply;
    ASSERT_TRUE(before.Acquire("a", 1, 1000, &reply).ok());
    held = reply.lease();
    first = before.service().incarnation();
    EXPECT_EQ(held.incarnation(), first);
  }
  std::set<std::string> listed = HoldersFile(holders).Read().value();
  EXPECT_EQ(listed, std::set<std::string>{"a"});

  Life after(Rebuilding(holders, absl::Seconds(30)));
  ASSERT_NE(after.service().incarnation(), first);
  after.AddNode(7, 2);
  grpc::Status stale = after.Renew(held, first);
  EXPECT_EQ(stale.error_code(), grpc::StatusCode::ABORTED) << stale.error_message();
  EXPECT_THAT(stale.error_message(), HasSubstr("re-report"));
  pb::AcquireReply early;
  grpc::Status soon = after.Acquire("b", 1, 200, &early);
  EXPECT_EQ(soon.error_code(), grpc::StatusCode::UNAVAILABLE) << soon.error_message();
  EXPECT_THAT(soon.error_message(), HasSubstr("rebuilt"));
  // c waits through the window, then gets the token a does not hold.
  grpc::ClientContext cctx;
  pb::AcquireRequest creq = Life::Tok("c", 1, 60000);
  pb::AcquireReply creply;
  std::promise<grpc::Status> cdone;
  after.stub().async()->Acquire(&cctx, &creq, &creply, [&](grpc::Status s) { cdone.set_value(s); });
  std::future<grpc::Status> c = cdone.get_future();
  EXPECT_EQ(c.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout) << "granted during the window";
  pb::ReportLeasesReply report;
  ASSERT_TRUE(after.Report("a", {held}, &report).ok());
  ASSERT_EQ(report.results_size(), 1);
  EXPECT_EQ(report.results(0).outcome(), pb::REPORT_RESTORED) << report.results(0).reason();
  EXPECT_EQ(report.incarnation(), after.service().incarnation());
  EXPECT_FALSE(report.rebuilding()) << "every listed holder reported: the window should close";
  ASSERT_EQ(c.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  ASSERT_TRUE(c.get().ok());
  EXPECT_NE(creply.lease().lease_id(), held.lease_id());
  EXPECT_TRUE(after.Renew(held, after.service().incarnation()).ok());
  // The token is fully held: a's restored lease and c's grant, never more.
  grpc::ClientContext lctx;
  pb::ListLeasesReply list;
  ASSERT_TRUE(after.stub().ListLeases(&lctx, {}, &list).ok());
  EXPECT_EQ(list.leases_size(), 2);
  // Reported again (a retry): still RESTORED, nothing allocated twice.
  pb::ReportLeasesReply again;
  ASSERT_TRUE(after.Report("a", {held}, &again).ok());
  EXPECT_EQ(again.results(0).outcome(), pb::REPORT_RESTORED);
  std::remove(holders.c_str());
}

TEST(PlacementRebuildTest, ReportOutcomesNotYetRefusedAndConflicts) {
  Life life(Rebuilding("", absl::Milliseconds(800)));
  life.AddNode(7, 1);
  pb::Lease lease;
  lease.set_lease_id(40);
  auto* b = lease.add_bundles();
  b->set_node_id(9);  // not back yet
  (*b->mutable_amounts())["tok"] = 1;
  pb::ReportLeasesReply reply;
  ASSERT_TRUE(life.Report("a", {lease}, &reply).ok());
  EXPECT_EQ(reply.results(0).outcome(), pb::REPORT_NOT_YET);
  EXPECT_TRUE(reply.rebuilding());
  EXPECT_GT(reply.rebuild_ends_unix_ms(), 0);
  // Two holders claim the one token: the first is restored, the second conflicts.
  b->set_node_id(7);
  ASSERT_TRUE(life.Report("a", {lease}, &reply).ok());
  EXPECT_EQ(reply.results(0).outcome(), pb::REPORT_RESTORED);
  lease.set_lease_id(41);
  pb::ReportLeasesReply other;
  ASSERT_TRUE(life.Report("b", {lease}, &other).ok());
  EXPECT_EQ(other.results(0).outcome(), pb::REPORT_REFUSED);
  EXPECT_THAT(other.results(0).reason(), HasSubstr("conflicts"));
  // The same id from another holder is refused too.
  lease.set_lease_id(40);
  ASSERT_TRUE(life.Report("b", {lease}, &other).ok());
  EXPECT_EQ(other.results(0).outcome(), pb::REPORT_REFUSED);
  // After the window nothing more is restored; a new grant gets an id above the restored ones.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  lease.set_lease_id(42);
  ASSERT_TRUE(life.Report("c", {lease}, &other).ok());
  EXPECT_EQ(other.results(0).outcome(), pb::REPORT_REFUSED);
  EXPECT_THAT(other.results(0).reason(), HasSubstr("no rebuild"));
  EXPECT_FALSE(other.rebuilding());
}

TEST(PlacementRebuildTest, BadReportsAreRefusedNamingTheField) {
  Life life(Rebuilding("", absl::Seconds(5)));
  life.AddNode(7, 1);
  auto bad = [&](const std::string& holder, const pb::Lease& lease, const std::string& says) {
    pb::ReportLeasesReply reply;
    grpc::Status s = life.Report(holder, {lease}, &reply);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << says;
    EXPECT_THAT(s.error_message(), HasSubstr(says));
  };
  pb::Lease good;
  good.set_lease_id(5);
  auto* b = good.add_bundles();
  b->set_node_id(7);
  (*b->mutable_amounts())["tok"] = 1;
  pb::Lease l = good;
  l.set_lease_id(0);
  bad("a", l, "lease_id 0");
  l = good;
  l.set_holder("mallory");
  bad("a", l, "mallory");
  l = good;
  (*l.mutable_bundles(0)->mutable_amounts())["tok"] = 0.5;
  bad("a", l, "'tok'");
  l = good;
  (*l.mutable_bundles(0)->mutable_amounts())["tok"] = 0;
  bad("a", l, "holds 0");
  l = good;
  l.mutable_bundles(0)->set_node_id(0);
  bad("a", l, "node_id 0");
  l = good;
  l.clear_bundles();
  bad("a", l, "bundles");
  l = good;
  l.set_ttl_ms(100u * 3600 * 1000);
  bad("a", l, "ttl_ms");
  bad("", good, "holder");
  std::vector<pb::Lease> many(PlacementService::kMaxReport + 1, good);
  pb::ReportLeasesReply reply;
  EXPECT_EQ(life.Report("a", many, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST(PlacementRebuildTest, WithoutAWindowOldLeasesAreGoneAndAnEmptyHoldersFileOpensNone) {
  const std::string holders = TempPath("holders-empty");
  ASSERT_TRUE(HoldersFile(holders).Write({}).ok());
  Life life(Rebuilding(holders, absl::Seconds(30)));  // nobody to wait for: no window
  life.AddNode(7, 1);
  pb::AcquireReply reply;
  ASSERT_TRUE(life.Acquire("a", 1, 200, &reply).ok());
  pb::Lease stale = reply.lease();
  stale.set_lease_id(999);
  pb::ReportLeasesReply report;
  ASSERT_TRUE(life.Report("a", {stale}, &report).ok());
  EXPECT_EQ(report.results(0).outcome(), pb::REPORT_REFUSED);
  std::remove(holders.c_str());
}

TEST(PlacementRebuildTest, HoldersFileRoundTripsAnyHolderAndRefusesGarbage) {
  const std::string path = TempPath("holders-rt");
  HoldersFile file(path);
  std::remove(path.c_str());
  EXPECT_TRUE(file.Read().value().empty()) << "an absent file is an empty list";
  const std::set<std::string> holders = {"plain", "with\nnewline", "tab\tand \"quotes\"", "\\back"};
  ASSERT_TRUE(file.Write(holders).ok());
  EXPECT_EQ(file.Read().value(), holders);
  { std::ofstream(path) << "ok\n\\q-bad-escape\\\n"; }
  EXPECT_EQ(file.Read().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(HoldersFile("/nonexistent-dir/x").Write(holders).code(), absl::StatusCode::kInternal);
  std::remove(path.c_str());
}

TEST(PlacementBatchTest, EachRequestHasItsOwnOutcome) {
  Life life(PlacementServiceOptions{});
  life.AddNode(7, 2);
  pb::AcquireBatchRequest req;
  *req.add_requests() = Life::Tok("a", 1, 1000);
  *req.add_requests() = Life::Tok("a", 0.5, 1000);  // bad amount
  *req.add_requests() = Life::Tok("a", 1, 1000);
  *req.add_requests() = Life::Tok("a", 1, 300);     // waits, then its deadline
  *req.add_requests() = Life::Tok("a", 5, 1000);    // can never be granted
  pb::AcquireBatchReply reply;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(life.stub().AcquireBatch(&ctx, req, &reply).ok());
  }
  ASSERT_EQ(reply.results_size(), 5);
  EXPECT_EQ(reply.results(0).code(), 0) << reply.results(0).message();
  EXPECT_EQ(reply.results(1).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(reply.results(1).message(), HasSubstr("'tok'"));
  EXPECT_EQ(reply.results(2).code(), 0);
  EXPECT_EQ(reply.results(3).code(), static_cast<int>(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(reply.results(4).code(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_NE(reply.results(0).reply().lease().lease_id(), reply.results(2).reply().lease().lease_id());

  pb::ReleaseBatchRequest rel;
  rel.set_holder("a");
  rel.add_lease_ids(reply.results(0).reply().lease().lease_id());
  rel.add_lease_ids(987654);
  rel.add_lease_ids(reply.results(0).reply().lease().lease_id());  // twice: the second is gone
  pb::ReleaseBatchReply rreply;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(life.stub().ReleaseBatch(&ctx, rel, &rreply).ok());
  }
  ASSERT_EQ(rreply.results_size(), 3);
  EXPECT_EQ(rreply.results(0).code(), 0);
  EXPECT_EQ(rreply.results(1).code(), static_cast<int>(absl::StatusCode::kNotFound));
  EXPECT_EQ(rreply.results(2).code(), static_cast<int>(absl::StatusCode::kNotFound));
  rel.set_holder("b");
  rel.clear_lease_ids();
  rel.add_lease_ids(reply.results(2).reply().lease().lease_id());
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(life.stub().ReleaseBatch(&ctx, rel, &rreply).ok());
  }
  EXPECT_EQ(rreply.results(0).code(), static_cast<int>(absl::StatusCode::kPermissionDenied));
  rel.set_incarnation(life.service().incarnation() + 1);
  rel.set_holder("a");
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(life.stub().ReleaseBatch(&ctx, rel, &rreply).ok());
  }
  EXPECT_EQ(rreply.results(0).code(), static_cast<int>(absl::StatusCode::kAborted));
}

TEST(PlacementBatchTest, BadBatchesAreRefused) {
  Life life(PlacementServiceOptions{});
  life.AddNode(7, 2);
  pb::AcquireBatchRequest empty;
  pb::AcquireBatchReply reply;
  grpc::ClientContext c1;
  EXPECT_EQ(life.stub().AcquireBatch(&c1, empty, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::AcquireBatchRequest big;
  for (int i = 0; i <= PlacementService::kMaxBatch; ++i) *big.add_requests() = Life::Tok("a", 1, 100);
  grpc::ClientContext c2;
  EXPECT_EQ(life.stub().AcquireBatch(&c2, big, &reply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::ReleaseBatchRequest rel;
  rel.set_holder("a");
  pb::ReleaseBatchReply rreply;
  grpc::ClientContext c3;
  EXPECT_EQ(life.stub().ReleaseBatch(&c3, rel, &rreply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  rel.add_lease_ids(1);
  rel.clear_holder();
  grpc::ClientContext c4;
  EXPECT_EQ(life.stub().ReleaseBatch(&c4, rel, &rreply).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  rel.set_holder("a");
  rel.set_lease_ids(0, 0);
  grpc::ClientContext c5;
  ASSERT_TRUE(life.stub().ReleaseBatch(&c5, rel, &rreply).ok());
  EXPECT_EQ(rreply.results(0).code(), static_cast<int>(absl::StatusCode::kInvalidArgument));
}

TEST(PlacementWatchTest, LostLeasesArePushedToTheirHolder) {
  Life life(PlacementServiceOptions{});
  life.AddNode(7, 2);
  grpc::ClientContext ctx;
  pb::WatchLeasesRequest req;
  req.set_holder("a");
  std::unique_ptr<grpc::ClientReader<pb::LeaseEvent>> reader = life.stub().WatchLeases(&ctx, req);
  pb::LeaseEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.lease_id(), 0u);
  EXPECT_EQ(event.incarnation(), life.service().incarnation());
  pb::AcquireRequest short_ttl = Life::Tok("a", 1, 1000);
  short_ttl.set_lease_ttl_ms(100);
  pb::AcquireReply expiring, dying, others;
  {
    grpc::ClientContext c;
    ASSERT_TRUE(life.stub().Acquire(&c, short_ttl, &expiring).ok());
  }
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.lease_id(), expiring.lease().lease_id());
  EXPECT_THAT(event.reason(), HasSubstr("expired"));
  ASSERT_TRUE(life.Acquire("b", 1, 1000, &others).ok());  // not a's: not pushed to a
  ASSERT_TRUE(life.Acquire("a", 1, 1000, &dying).ok());
  proto::NodeInfo dead;
  dead.set_node_id(7);
  life.service().OnMembership(dead, /*alive=*/false);
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.lease_id(), dying.lease().lease_id());
  EXPECT_THAT(event.reason(), HasSubstr("died"));
  ctx.TryCancel();
  while (reader->Read(&event)) {
  }
  reader->Finish();

  grpc::ClientContext bad_ctx;
  pb::WatchLeasesRequest bad;
  std::unique_ptr<grpc::ClientReader<pb::LeaseEvent>> refused = life.stub().WatchLeases(&bad_ctx, bad);
  EXPECT_FALSE(refused->Read(&event));
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace ferry::control::placement
