// Fuzzes ferry-coord's Session stream (control/service/coordinator_service.h) through a real gRPC
// server in the process (its in-process channel). Input: a sequence of messages, each
// (stream byte: which of up to 3 concurrent sessions, u16 length, NodeMessage bytes);
// bytes that do not parse as a NodeMessage are skipped. Each session is opened at its
// first message, with a thread reading what the coordinator sends it (as ferryd does); after
// the last message every session is half-closed, drained and finished, under a deadline.
// Properties: no crash or hang; an accepted session starts with Welcome naming the node; and
// once every session has ended, no node is left alive.
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>
#include <thread>

#include "tests/fuzz/coord_fixture.h"

namespace proto = ferry::proto;

namespace {

constexpr int kStreams = 3;
constexpr int kMaxMessages = 64;

struct Open {
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReaderWriter<proto::NodeMessage, proto::CoordMessage>> stream;
  bool first_is_hello = false;
  uint64_t node_id = 0;
  std::thread reader;
  bool got_any = false;   // written by `reader`, read after it is joined
  proto::CoordMessage first;

  void Read() {
    proto::CoordMessage m;
    while (stream->Read(&m)) {
      if (!got_any) first = m;
      got_any = true;
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ferry::fuzz::InProcessCoordinator* coord = new ferry::fuzz::InProcessCoordinator();
  ferry::fuzz::Reader in(data, size);
  std::unique_ptr<Open> open[kStreams];
  for (int n = 0; n < kMaxMessages && !in.empty(); ++n) {
    const int which = in.Byte() % kStreams;
    const std::string_view bytes = in.Chunk();
    proto::NodeMessage msg;
    if (!msg.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) continue;
    if (!open[which]) {
      open[which] = std::make_unique<Open>();
      open[which]->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
      open[which]->stream = coord->stub().Session(&open[which]->ctx);
      open[which]->first_is_hello = msg.has_hello();
      open[which]->node_id = msg.hello().node().node_id();
      open[which]->reader = std::thread([o = open[which].get()] { o->Read(); });
    }
    // A write fails once the coordinator has ended the session (say, a rejected Hello).
    open[which]->stream->Write(msg);
  }
  for (auto& o : open) {
    if (!o) continue;
    o->stream->WritesDone();
    o->reader.join();
    if (o->got_any) {
      // The coordinator answers only a session that started with a Hello, Welcome first.
      FUZZ_CHECK(o->first_is_hello);
      FUZZ_CHECK(o->first.has_welcome() && o->first.welcome().node_id() == o->node_id);
    }
    const grpc::Status s = o->stream->Finish();
    FUZZ_CHECK(s.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED);
    FUZZ_CHECK(s.ok() || !s.error_message().empty());
  }
  // Every session has ended (Finish returned), so every node it registered is dead again.
  const proto::ClusterStatusReply status = coord->service().coordinator().ClusterStatus();
  for (const proto::NodeInfo& n : status.nodes()) FUZZ_CHECK(!n.alive());
  return 0;
}
