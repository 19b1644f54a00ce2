// Fuzzes ferry-coord's unary RPCs (control/service/coordinator_service.h): each input is one
// request proto, parsed from the bytes after its first byte (which selects the RPC), and sent
// through the in-process channel (the handlers are callback reactors). Two nodes (ids 1 and 2) hold live
// sessions for the whole run, so requests naming them reach the directory and the planner.
// Waits are forced short: AcquireSource and Broadcast get at most 5 ms, Locate 0 and
// Broadcast never waits for completion (and the coordinator caps every wait at 20 ms).
// Every call must return, with a status; an error status must carry a message.
#include <cstdint>
#include <string_view>

#include "tests/fuzz/coord_fixture.h"

namespace proto = ferry::proto;

namespace {

template <typename Req, typename Reply, typename Handler>
void Call(std::string_view bytes, Handler handler) {
  Req req;
  if (!req.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
  Reply reply;
  grpc::ClientContext ctx;
  const grpc::Status s = handler(&ctx, &req, &reply);
  FUZZ_CHECK(s.error_code() >= grpc::StatusCode::OK && s.error_code() <= grpc::StatusCode::UNAUTHENTICATED);
  FUZZ_CHECK(s.ok() || !s.error_message().empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ferry::fuzz::InProcessCoordinator* coord = [] {
    auto* c = new ferry::fuzz::InProcessCoordinator();
    c->HoldNode(1, "holder-1");
    c->HoldNode(2, "holder-2");
    return c;
  }();
  if (size == 0) return 0;
  proto::Coordinator::Stub& svc = coord->stub();
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 9) {
    case 0:
      Call<proto::PublishRequest, proto::PublishReply>(
          bytes, [&](auto* c, auto* q, auto* r) { return svc.Publish(c, *q, r); });
      break;
    case 1:
      Call<proto::UnpublishRequest, proto::UnpublishReply>(
          bytes, [&](auto* c, auto* q, auto* r) { return svc.Unpublish(c, *q, r); });
      break;
    case 2:
      Call<proto::AcquireSourceRequest, proto::AcquireSourceReply>(bytes, [&](auto* c, auto* q, auto* r) {
        q->set_timeout_ms(q->timeout_ms() % 6);
        return svc.AcquireSource(c, *q, r);
      });
      break;
    case 3:
      Call<proto::ReportTransferRequest, proto::ReportTransferReply>(
          bytes, [&](auto* c, auto* q, auto* r) { return svc.ReportTransfer(c, *q, r); });
      break;
    case 4:
      Call<proto::LocateRequest, proto::LocateReply>(bytes, [&](auto* c, auto* q, auto* r) {
        q->set_timeout_ms(0);
        return svc.Locate(c, *q, r);
      });
      break;
    case 5:
      Call<proto::DeleteRequest, proto::DeleteReply>(
          bytes, [&](auto* c, auto* q, auto* r) { return svc.Delete(c, *q, r); });
      break;
    case 6:
      Call<proto::ListRequest, proto::ListReply>(
          bytes, [&](auto* c, auto* q, auto* r) { return svc.List(c, *q, r); });
      break;
    case 7:
      Call<proto::ClusterStatusRequest, proto::ClusterStatusReply>(
          bytes, [&](auto* c, auto* q, auto* r) { return svc.ClusterStatus(c, *q, r); });
      break;
    case 8:
      Call<proto::BroadcastRequest, proto::BroadcastReply>(bytes, [&](auto* c, auto* q, auto* r) {
        q->set_wait(false);
        q->set_timeout_ms(q->timeout_ms() % 6);
        return svc.Broadcast(c, *q, r);
      });
      break;
  }
  return 0;
}
