// A CoordinatorClient without gRPC, for unit tests of ferryd's Node: the test plays the
// coordinator. FakeCoordinator is the shared state (the test keeps it; the client the Node
// owns points at it): it records every NodeMessage and transfer report, lets the test push
// CoordMessages into the open session, end the session, and script the unary calls.
//
// Threading: every method is thread-safe. Waits are bounded by their timeout.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "dataplane/sidecar/coordinator_client.h"

namespace ferry::dataplane::testing {

class FakeCoordinator {
 public:
  // One Session stream as the fake sees it.
  struct Stream {
    std::deque<proto::CoordMessage> inbox;   // to the node
    bool ended = false;                      // by the fake (EndSession) or by Cancel
    bool cancelled = false;                  // by the node
    absl::Status final_status;               // what Finish returns
  };

  // Called for AcquireSource; default: NOT_FOUND.
  std::function<absl::Status(const proto::AcquireSourceRequest&, proto::AcquireSourceReply*)> acquire;

  // --- the session ------------------------------------------------------------------
  // Queues `msg` for the node on the newest session (fails the test's wait if none opened).
  void Push(const proto::CoordMessage& msg) {
    absl::MutexLock lock(&mu_);
    if (!streams_.empty()) streams_.back()->inbox.push_back(msg);
  }
  // Ends the newest session with `status` (as a dropped connection or a refusal would).
  void EndSession(absl::Status status) {
    absl::MutexLock lock(&mu_);
    if (streams_.empty()) return;
    streams_.back()->ended = true;
    streams_.back()->final_status = std::move(status);
  }
  // Waits until `n` sessions have been opened and each has sent its Hello.
  bool WaitSessions(size_t n, absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    auto ready = [this, n] {
      mu_.AssertHeld();
      return hellos_.size() >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  }
  // The newest session was cancelled by the node.
  bool WaitCancelled(absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    auto ready = [this] {
      mu_.AssertHeld();
      return !streams_.empty() && streams_.back()->cancelled;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  }
  std::vector<proto::Hello> hellos() {
    absl::MutexLock lock(&mu_);
    return hellos_;
  }
  // Waits for a DropDone{op_id} on any session.
  bool WaitDropDone(uint64_t op_id, absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    auto ready = [this, op_id] {
      mu_.AssertHeld();
      for (const proto::NodeMessage& m : sent_) {
        if (m.has_drop_done() && m.drop_done().op_id() == op_id) return true;
      }
      return false;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  }
  std::vector<uint64_t> drop_dones() {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    for (const proto::NodeMessage& m : sent_) {
      if (m.has_drop_done()) out.push_back(m.drop_done().op_id());
    }
    return out;
  }

  // --- reports and unary calls ----------------------------------------------------------
  // Waits for a transfer report matching `match`, sent by the ReportTransfer RPC or on a
  // session (NodeMessage.transfer_report); returns it (nullopt-like: ok=false).
  bool WaitReport(const std::function<bool(const proto::ReportTransferRequest&)>& match,
                  proto::ReportTransferRequest* out, absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu_);
    const proto::ReportTransferRequest* found = nullptr;
    auto ready = [&] {
      mu_.AssertHeld();
      for (const proto::ReportTransferRequest& r : reports_) {
        if (match(r)) {
          found = &r;
          return true;
        }
      }
      for (const proto::NodeMessage& m : sent_) {
        if (m.has_transfer_report() && match(m.transfer_report())) {
          found = &m.transfer_report();
          return true;
        }
      }
      return false;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&ready), timeout)) return false;
    if (out != nullptr) *out = *found;
    return true;
  }
  // The transfer reports sent on sessions.
  std::vector<proto::ReportTransferRequest> session_reports() {
    absl::MutexLock lock(&mu_);
    std::vector<proto::ReportTransferRequest> out;
    for (const proto::NodeMessage& m : sent_) {
      if (m.has_transfer_report()) out.push_back(m.transfer_report());
    }
    return out;
  }
  std::vector<proto::ReportTransferRequest> reports() {
    absl::MutexLock lock(&mu_);
    return {reports_.begin(), reports_.end()};
  }
  std::vector<proto::PublishRequest> published() {
    absl::MutexLock lock(&mu_);
    return published_;
  }

 private:
  friend class FakeCoordinatorClient;
  friend class FakeStream;

  absl::Mutex mu_;
  std::vector<std::shared_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  std::vector<proto::Hello> hellos_ ABSL_GUARDED_BY(mu_);
  std::vector<proto::NodeMessage> sent_ ABSL_GUARDED_BY(mu_);   // every message from the node
  std::deque<proto::ReportTransferRequest> reports_ ABSL_GUARDED_BY(mu_);   // deque: stable addresses
  std::vector<proto::PublishRequest> published_ ABSL_GUARDED_BY(mu_);
};

class FakeStream final : public CoordinatorStream {
 public:
  FakeStream(std::shared_ptr<FakeCoordinator> coord, std::shared_ptr<FakeCoordinator::Stream> stream)
      : coord_(std::move(coord)), stream_(std::move(stream)) {}
  bool Write(const proto::NodeMessage& msg) override {
    absl::MutexLock lock(&coord_->mu_);
    if (stream_->ended) return false;
    coord_->sent_.push_back(msg);
    if (msg.has_hello()) coord_->hellos_.push_back(msg.hello());
    return true;
  }
  bool Read(proto::CoordMessage* msg) override {
    absl::MutexLock lock(&coord_->mu_);
    auto ready = [this] {
      coord_->mu_.AssertHeld();
      return stream_->ended || !stream_->inbox.empty();
    };
    coord_->mu_.Await(absl::Condition(&ready));
    if (stream_->ended) return false;
    *msg = std::move(stream_->inbox.front());
    stream_->inbox.pop_front();
    return true;
  }
  absl::Status Finish() override {
    absl::MutexLock lock(&coord_->mu_);
    return stream_->final_status;
  }
  void Cancel() override {
    absl::MutexLock lock(&coord_->mu_);
    if (!stream_->ended) stream_->final_status = absl::CancelledError("cancelled by the node");
    stream_->ended = true;
    stream_->cancelled = true;
  }

 private:
  std::shared_ptr<FakeCoordinator> coord_;
  std::shared_ptr<FakeCoordinator::Stream> stream_;
};

class FakeCoordinatorClient final : public CoordinatorClient {
 public:
  explicit FakeCoordinatorClient(std::shared_ptr<FakeCoordinator> coord) : coord_(std::move(coord)) {}

  const std::string& target() const override { return target_; }
  std::unique_ptr<CoordinatorStream> OpenSession() override {
    auto stream = std::make_shared<FakeCoordinator::Stream>();
    {
      absl::MutexLock lock(&coord_->mu_);
      coord_->streams_.push_back(stream);
    }
    return std::make_unique<FakeStream>(coord_, stream);
  }
  absl::Status Locate(const proto::LocateRequest& req, proto::LocateReply*) override {
    return absl::NotFoundError("no object " + req.ref().key());
  }
  absl::Status Publish(const proto::PublishRequest& req) override {
    absl::MutexLock lock(&coord_->mu_);
    coord_->published_.push_back(req);
    return absl::OkStatus();
  }
  absl::Status Unpublish(const proto::UnpublishRequest&) override { return absl::OkStatus(); }
  absl::Status AcquireSource(const proto::AcquireSourceRequest& req, proto::AcquireSourceReply* reply) override {
    if (coord_->acquire) return coord_->acquire(req, reply);
    return absl::NotFoundError("no object " + req.ref().key());
  }
  absl::Status ReportTransfer(const proto::ReportTransferRequest& req) override {
    absl::MutexLock lock(&coord_->mu_);
    coord_->reports_.push_back(req);
    return absl::OkStatus();
  }
  absl::Status Delete(const proto::DeleteRequest&) override { return absl::OkStatus(); }
  absl::Status PublishBatch(const proto::PublishBatchRequest& req, proto::PublishBatchReply*) override {
    absl::MutexLock lock(&coord_->mu_);
    for (proto::PublishRequest e : req.entries()) {
      e.set_node_id(req.node_id());
      coord_->published_.push_back(std::move(e));
    }
    return absl::OkStatus();
  }
  absl::Status DeleteBatch(const proto::DeleteBatchRequest&, proto::DeleteBatchReply*) override {
    return absl::OkStatus();
  }
  absl::Status Exists(const proto::ExistsRequest& req, proto::ExistsReply* reply) override {
    for (int i = 0; i < req.refs_size(); ++i) reply->add_exists(false);
    return absl::OkStatus();
  }
  absl::Status List(const proto::ListRequest&, proto::ListReply*) override { return absl::OkStatus(); }
  absl::Status ClusterStatus(proto::ClusterStatusReply*) override { return absl::OkStatus(); }
  absl::Status BroadcastBatch(const proto::BroadcastBatchRequest&, proto::BroadcastBatchReply*) override {
    return absl::UnimplementedError("fake coordinator: no BroadcastBatch");
  }
  absl::Status Broadcast(const proto::BroadcastRequest&, proto::BroadcastReply*) override {
    return absl::UnimplementedError("fake coordinator: no Broadcast");
  }
  void Shutdown() override {}

 private:
  const std::string target_ = "fake-coordinator";
  std::shared_ptr<FakeCoordinator> coord_;
};

}  // namespace ferry::dataplane::testing
