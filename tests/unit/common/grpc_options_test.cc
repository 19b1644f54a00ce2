// Tests of common/grpc_options.h over real gRPC on loopback: the keepalive policy keeps an
// idle stream open when both sides apply it, and (the control that shows the test can fail)
// a client that pings faster than its server permits gets GOAWAY "too_many_pings"; a busy
// port is refused instead of shared through SO_REUSEPORT.
#include "common/grpc_options.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/coordinator.grpc.pb.h"

namespace ferry {
namespace {

using ::testing::HasSubstr;

// A Session that reads until the client closes and never writes: from the server's side
// the connection carries no data, so every ping the client sends is judged by the policy.
class SilentSession final : public proto::Coordinator::Service {
 public:
  grpc::Status Session(grpc::ServerContext*,
                       grpc::ServerReaderWriter<proto::CoordMessage, proto::NodeMessage>* stream) override {
    proto::NodeMessage m;
    while (stream->Read(&m)) {
    }
    return grpc::Status::OK;
  }
};

// Client pings every second (gRPC 1.51 sends client pings at most once a second, so the
// scale cannot go lower); the server's permitted minimum is `server_min_ms`.
KeepalivePolicy Scaled(int64_t server_min_ms) {
  return KeepalivePolicy{.client_time_ms = 1000,
                         .client_timeout_ms = 5000,
                         .client_permit_without_calls = false,
                         .server_min_ping_interval_ms = server_min_ms,
                         .server_permit_without_calls = true};
}

// Opens a Session under `policy`, sends one message, leaves the stream idle for `intervals`
// client ping intervals, then closes it and returns how the call ended: OK means the stream
// stayed open throughout. The server never writes, so nothing resets its ping strikes, and
// the client receives nothing, so nothing postpones its keepalive pings.
grpc::Status HoldIdleStream(const KeepalivePolicy& policy, int intervals) {
  SilentSession service;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  ApplyServerKeepalive(policy, builder);
  absl::StatusOr<StartedServer> server = StartServer(builder, "127.0.0.1:0");
  if (!server.ok()) return grpc::Status(grpc::StatusCode::INTERNAL, std::string(server.status().message()));

  grpc::ChannelArguments args;
  ApplyClientKeepalive(policy, args);
  auto channel = grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server->port),
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = proto::Coordinator::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->Session(&ctx);
  stream->Write(proto::NodeMessage());
  // The passing of time is what is under test here, so the test waits it out.
  std::this_thread::sleep_for(std::chrono::milliseconds(policy.client_time_ms * intervals));
  stream->WritesDone();
  grpc::Status status = stream->Finish();
  server->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return status;
}

TEST(KeepaliveTest, ShippedPolicyAgrees) {
  EXPECT_TRUE(CheckKeepalive(kKeepalive).ok());
  EXPECT_GE(kKeepalive.client_time_ms, kKeepalive.server_min_ping_interval_ms);
}

TEST(KeepaliveTest, DisagreeingPoliciesAreNamed) {
  absl::Status s = CheckKeepalive(Scaled(3000));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("1000 ms"));
  EXPECT_THAT(s.message(), HasSubstr("3000 ms"));
  KeepalivePolicy no_calls = Scaled(500);
  no_calls.client_permit_without_calls = true;
  no_calls.server_permit_without_calls = false;
  EXPECT_FALSE(CheckKeepalive(no_calls).ok());
}

TEST(KeepaliveTest, IdleStreamSurvivesManyPingsWhenPoliciesAgree) {
  const KeepalivePolicy policy = Scaled(500);
  ASSERT_TRUE(CheckKeepalive(policy).ok());
  grpc::Status s = HoldIdleStream(policy, 8);
  EXPECT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
}

// The negative control: the same client against a server that permits one ping per 3 s.
// With gRPC's default of 2 strikes a GOAWAY comes about 4 s in (measured: the fifth ping).
TEST(KeepaliveTest, ClientPingingFasterThanPermittedGetsGoaway) {
  const KeepalivePolicy policy = Scaled(3000);
  ASSERT_FALSE(CheckKeepalive(policy).ok());
  grpc::Status s = HoldIdleStream(policy, 8);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST(StartServerTest, SecondServerOnABusyPortIsRefused) {
  SilentSession a_service, b_service;
  grpc::ServerBuilder a;
  a.RegisterService(&a_service);
  absl::StatusOr<StartedServer> first = StartServer(a, "127.0.0.1:0");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_GT(first->port, 0);
  const std::string address = absl::StrCat("127.0.0.1:", first->port);

  grpc::ServerBuilder b;
  b.RegisterService(&b_service);
  absl::StatusOr<StartedServer> second = StartServer(b, address);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr(address));
  EXPECT_THAT(second.status().message(), HasSubstr("already in use"));
  first->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

// The control: gRPC's default (SO_REUSEPORT on both) lets the second server start, which is
// the split-brain StartServer exists to prevent.
TEST(StartServerTest, GrpcDefaultWouldShareThePort) {
  SilentSession a_service, b_service;
  grpc::ServerBuilder a;
  a.RegisterService(&a_service);
  int port = 0;
  a.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  std::unique_ptr<grpc::Server> first = a.BuildAndStart();
  ASSERT_NE(first, nullptr);
  grpc::ServerBuilder b;
  b.RegisterService(&b_service);
  int port2 = 0;
  b.AddListeningPort(absl::StrCat("127.0.0.1:", port), grpc::InsecureServerCredentials(), &port2);
  std::unique_ptr<grpc::Server> second = b.BuildAndStart();
  EXPECT_NE(second, nullptr);
  EXPECT_EQ(port2, port);
  if (second) second->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  first->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
}

TEST(StartServerTest, UnixSocketServerReportsNoPort) {
  SilentSession service;
  grpc::ServerBuilder builder;
  builder.RegisterService(&service);
  char tmpl[] = "/tmp/ferry-grpc-options.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string path = std::string(tmpl) + "/s.sock";
  absl::StatusOr<StartedServer> s = StartServer(builder, "unix:" + path);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->port, 0);
  s->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  unlink(path.c_str());
  rmdir(tmpl);
}

}  // namespace
}  // namespace ferry
