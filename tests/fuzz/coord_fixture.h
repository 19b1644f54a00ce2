// One in-process ferry-coord for the coordinator fuzzers: a CoordinatorService behind a
// real gRPC server reached through its in-process channel, with no network port.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"
#include "control/service/coordinator_service.h"
#include "grpcpp/grpcpp.h"
#include "proto/coordinator.grpc.pb.h"
#include "spdlog/spdlog.h"
#include "tests/fuzz/fuzz_util.h"

namespace ferry::fuzz {

// Coordinator options for fuzzing: no client-supplied wait longer than 20 ms, and nodes
// stay alive without heartbeats (so a held session does not die while inputs run).
inline control::CoordinatorOptions FuzzCoordinatorOptions() {
  control::CoordinatorOptions o;
  o.liveness_timeout = absl::Hours(24);
  o.max_wait = absl::Milliseconds(20);
  return o;
}

class InProcessCoordinator {
 public:
  InProcessCoordinator() : service_(FuzzCoordinatorOptions()) {
    // A log line per input (spdlog, or protobuf on invalid UTF-8) would dominate the run.
    spdlog::set_level(spdlog::level::off);
    google::protobuf::SetLogHandler(nullptr);
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    FUZZ_CHECK(server_ != nullptr);
    channel_ = server_->InProcessChannel(grpc::ChannelArguments());
    stub_ = proto::Coordinator::NewStub(channel_);
  }

  control::CoordinatorService& service() { return service_; }
  proto::Coordinator::Stub& stub() { return *stub_; }

  // Registers a node whose session stays open for the process lifetime; a thread drains
  // what the coordinator sends it (a sync server write would block on a full window).
  void HoldNode(uint64_t id, const std::string& name) {
    auto h = std::make_unique<Held>();
    h->stream = stub_->Session(&h->ctx);
    proto::NodeMessage hello;
    proto::NodeInfo* info = hello.mutable_hello()->mutable_node();
    info->set_node_id(id);
    info->set_name(name);
    info->set_dp_address("fuzz-address-" + name);
    FUZZ_CHECK(h->stream->Write(hello));
    proto::CoordMessage first;
    FUZZ_CHECK(h->stream->Read(&first) && first.has_welcome());
    h->reader = std::thread([s = h->stream.get()] {
      proto::CoordMessage m;
      while (s->Read(&m)) {
      }
    });
    held_.push_back(std::move(h));
  }

 private:
  struct Held {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<proto::NodeMessage, proto::CoordMessage>> stream;
    std::thread reader;
  };
  control::CoordinatorService service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<proto::Coordinator::Stub> stub_;
  std::vector<std::unique_ptr<Held>> held_;
};

}  // namespace ferry::fuzz
