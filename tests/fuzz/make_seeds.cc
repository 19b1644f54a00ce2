// Writes the seed corpora of the fuzzers (tests/fuzz/corpus/<name>/): a few valid messages
// of each kind, built with ferry's own encoders and protos. Run once and commit the output:
//   build/bin/ferry_fuzz_seeds tests/fuzz/corpus
// Files are named by content, so rerunning it adds nothing that is already there. Inputs
// that once crashed a fuzzer are kept next to these as regressions (named regress-*).
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "dataplane/engine/chunk_request.h"
#include "shm/arena_channel.h"
#include "dataplane/ucx/ucx_wire.h"
#include "proto/coordinator.pb.h"
#include "proto/sidecar.pb.h"
#include "tests/fuzz/fuzz_util.h"

namespace dp = ferry::dataplane;
namespace proto = ferry::proto;

namespace {

std::string g_root;

// FNV-1a, enough to give each seed a stable distinct name.
std::string Hash(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

void Write(const std::string& fuzzer, const std::string& bytes) {
  const std::string dir = g_root + "/" + fuzzer;
  mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/seed-" + Hash(bytes);
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
}

std::string Selected(uint8_t selector, const google::protobuf::Message& m) {
  return std::string(1, static_cast<char>(selector)) + m.SerializeAsString();
}

proto::ObjectRef Ref(const std::string& ns, const std::string& key) {
  proto::ObjectRef r;
  r.set_ns(ns);
  r.set_key(key);
  return r;
}

void ChunkRequests() {
  Write("chunk_request", dp::EncodeChunkRequest({"default", "a", 0, 4096}));
  Write("chunk_request", dp::EncodeChunkRequest({"default", "a", 9, 4096}));
  Write("chunk_request", dp::EncodeChunkRequest({"default", "b", 1, 4096}));
  Write("chunk_request", dp::EncodeChunkRequest({"default", "b", 0, 8192}));
  Write("chunk_request", dp::EncodeChunkRequest({"tenant-1.x", std::string("k\0\xff", 3), 7, 1 << 20}));
}

void UcxWire() {
  Write("ucx_wire", std::string(1, '\0') + dp::ucx::EncodeAddress(42, std::string(60, '\x5a')));
  Write("ucx_wire", std::string(1, '\1') + dp::ucx::EncodeHeader(dp::ucx::RequestHeader{7, 42, 4096}));
  Write("ucx_wire", std::string(1, '\2') + dp::ucx::EncodeHeader(dp::ucx::ReplyHeader{7, 43, 0, 0, 4096}));
  Write("ucx_wire", std::string(1, '\2') + dp::ucx::EncodeHeader(dp::ucx::ReplyHeader{7, 43, 5, 0, 0}));
  Write("ucx_wire", std::string(1, '\3') + dp::ucx::EncodeHeader(dp::ucx::ControlHeader{42}));
}

void ArenaHellos() {
  ferry::shm::ArenaHello h;
  h.session = 1;
  h.arena_size = 1 << 20;
  h.node_id = 42;
  const std::string hello(reinterpret_cast<const char*>(&h), sizeof(h));
  // ferryd -> client: the hello with one memfd of 1 MiB (256 pages), then without a fd.
  Write("arena_hello", std::string("\0\1\0\1", 4) + hello);
  Write("arena_hello", std::string("\0\0\0\1", 4) + hello);
  // client -> ferryd: nothing, and some chatter.
  Write("arena_hello", std::string("\1\0\0\0", 4));
  Write("arena_hello", std::string("\1\0\0\0", 4) + "hello ferryd");
}

void CoordRpcs() {
  proto::PublishRequest pub;
  pub.set_node_id(1);
  *pub.mutable_ref() = Ref("default", "small");
  pub.mutable_meta()->set_size(5);
  pub.mutable_meta()->set_count(5);
  pub.set_inline_data("hello");
  Write("coord_rpc", Selected(0, pub));
  proto::PublishRequest big;
  big.set_node_id(1);
  *big.mutable_ref() = Ref("default", "big");
  big.mutable_meta()->set_size(64 << 20);
  big.mutable_meta()->set_dtype(proto::F32);
  big.mutable_meta()->set_count(16 << 20);
  Write("coord_rpc", Selected(0, big));
  proto::UnpublishRequest unpub;
  unpub.set_node_id(1);
  *unpub.mutable_ref() = Ref("default", "big");
  Write("coord_rpc", Selected(1, unpub));
  proto::AcquireSourceRequest acq;
  acq.set_node_id(2);
  *acq.mutable_ref() = Ref("default", "big");
  acq.add_exclude(3);
  Write("coord_rpc", Selected(2, acq));
  for (auto outcome : {proto::ReportTransferRequest::COMPLETED, proto::ReportTransferRequest::SENDER_FAILED,
                       proto::ReportTransferRequest::ABORTED}) {
    proto::ReportTransferRequest rep;
    rep.set_node_id(2);
    *rep.mutable_ref() = Ref("default", "big");
    rep.set_sender(1);
    rep.set_outcome(outcome);
    rep.set_detail("fuzz");
    Write("coord_rpc", Selected(3, rep));
  }
  proto::LocateRequest loc;
  *loc.mutable_ref() = Ref("default", "small");
  Write("coord_rpc", Selected(4, loc));
  proto::DeleteRequest del;
  *del.mutable_ref() = Ref("default", "small");
  Write("coord_rpc", Selected(5, del));
  proto::ListRequest list;
  list.set_ns("default");
  list.set_prefix("b");
  list.set_limit(10);
  Write("coord_rpc", Selected(6, list));
  Write("coord_rpc", Selected(7, proto::ClusterStatusRequest()));
  proto::BroadcastRequest bc;
  *bc.mutable_ref() = Ref("default", "big");
  bc.add_node_ids(2);
  Write("coord_rpc", Selected(8, bc));
  proto::BroadcastRequest all;
  *all.mutable_ref() = Ref("default", "small");
  Write("coord_rpc", Selected(8, all));
}

proto::NodeMessage Hello(uint64_t id, const std::string& name, bool holdings) {
  proto::NodeMessage m;
  proto::Hello* h = m.mutable_hello();
  h->mutable_node()->set_node_id(id);
  h->mutable_node()->set_name(name);
  h->mutable_node()->set_dp_address("addr-" + name);
  h->mutable_node()->set_transport("inproc");
  if (holdings) {
    proto::HeldObject* o = h->add_holdings();
    *o->mutable_ref() = Ref("default", "held");
    o->mutable_meta()->set_size(3);
    o->set_inline_data("abc");
    proto::HeldObject* big = h->add_holdings();
    *big->mutable_ref() = Ref("default", "held-big");
    big->mutable_meta()->set_size(1 << 30);
  }
  return m;
}

proto::NodeMessage Heartbeat(uint64_t seq) {
  proto::NodeMessage m;
  m.mutable_heartbeat()->set_seq(seq);
  m.mutable_heartbeat()->set_bandwidth_bps(1.2e8);
  m.mutable_heartbeat()->set_latency_s(1e-4);
  m.mutable_heartbeat()->set_arena_used(4096);
  m.mutable_heartbeat()->set_objects(1);
  return m;
}

// (stream byte, framed NodeMessage) per message.
std::string Session(const std::vector<std::pair<int, proto::NodeMessage>>& msgs) {
  std::string out;
  for (const auto& [stream, m] : msgs) {
    out.push_back(static_cast<char>(stream));
    out += ferry::fuzz::Framed(m.SerializeAsString());
  }
  return out;
}

void CoordSessions() {
  Write("coord_session", Session({{0, Hello(11, "n1", false)}, {0, Heartbeat(1)}, {0, Heartbeat(2)}}));
  Write("coord_session", Session({{0, Hello(11, "n1", true)}, {1, Hello(12, "n2", false)}, {1, Heartbeat(1)}}));
  // The same id twice (a reconnect) and the same name twice (refused).
  Write("coord_session", Session({{0, Hello(11, "n1", false)}, {1, Hello(11, "n1", false)}}));
  Write("coord_session", Session({{0, Hello(11, "n1", false)}, {2, Hello(13, "n1", false)}}));
  // A session that starts without a Hello.
  Write("coord_session", Session({{0, Heartbeat(1)}}));
}

void SidecarRequests() {
  proto::CreateRequest create;
  create.set_session(1);
  *create.mutable_ref() = Ref("default", "x");
  create.mutable_meta()->set_size(4096);
  create.mutable_meta()->set_dtype(proto::F32);
  create.mutable_meta()->set_count(1024);
  Write("sidecar_request", Selected(0, create));
  create.mutable_meta()->set_count(0);
  Write("sidecar_request", Selected(0, create));
  proto::SealRequest seal;
  seal.set_session(1);
  *seal.mutable_ref() = Ref("default", "x");
  Write("sidecar_request", Selected(1, seal));
  proto::GetRequest get;
  get.set_session(1);
  *get.mutable_ref() = Ref("ns.b-1", "y");
  get.set_timeout_ms(10);
  Write("sidecar_request", Selected(3, get));
  proto::ListObjectsRequest list;
  list.set_prefix("a");
  Write("sidecar_request", Selected(6, list));
  proto::SidecarBroadcastRequest bc;
  *bc.mutable_ref() = Ref("default", "x");
  bc.add_nodes("n1");
  bc.add_nodes("12");
  Write("sidecar_request", Selected(7, bc));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_ROOT (tests/fuzz/corpus)\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  mkdir(g_root.c_str(), 0755);
  ChunkRequests();
  UcxWire();
  ArenaHellos();
  CoordRpcs();
  CoordSessions();
  SidecarRequests();
  return 0;
}
