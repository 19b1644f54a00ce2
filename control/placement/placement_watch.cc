// PlacementService::WatchLeases: one server stream per watcher that pushes its holder's lost
// leases (node death, expiry) as they happen. The first message carries only the incarnation,
// so a watcher that reconnects learns at once whether the coordinator restarted.
#include <deque>

#include "absl/strings/str_cat.h"
#include "control/placement/placement_service.h"
#include "proto/status_bridge.h"

namespace ferry::control::placement {

// One stream. Events queue here and are written one at a time (gRPC allows one write in
// flight). The service holds it (shared_ptr) in watches_ until OnDone; events collected under
// the service's lock keep it alive until they are pushed. gRPC calls are made outside mu_, as a
// reaction may run inline.
class PlacementService::LeaseWatch final : public grpc::ServerWriteReactor<pb::LeaseEvent> {
 public:
  // Events a watcher may fall behind by before its stream is ended (RESOURCE_EXHAUSTED).
  static constexpr size_t kMaxQueued = 4096;

  LeaseWatch(PlacementService* service, std::string holder) : service_(service), holder_(std::move(holder)) {}
  const std::string& holder() const { return holder_; }

  void Push(pb::LeaseEvent event) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (ending_) return;
      if (queue_.size() >= kMaxQueued) {
        ending_ = true;
        end_status_ = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                   absl::StrCat("lease watch of '", holder_, "' fell ", kMaxQueued, " events behind"));
        queue_.clear();
        if (writing_) return;  // finished by OnWriteDone
      } else {
        queue_.push_back(std::move(event));
        if (writing_) return;
        writing_ = true;
        current_ = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    Act();
  }

  void End(grpc::Status status) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      absl::MutexLock lock(&mu_);
      if (ending_) return;
      ending_ = true;
      end_status_ = std::move(status);
      if (writing_) return;
    }
    Act();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !ending_) {
        ending_ = true;
        end_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "lease watch stream broke");
      }
      if (!ending_ && !queue_.empty()) {
        writing_ = true;
        current_ = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    Act();
  }
  void OnCancel() override { End(grpc::Status(grpc::StatusCode::CANCELLED, "lease watch cancelled by its client")); }
  void OnDone() override {
    std::shared_ptr<LeaseWatch> last = service_->ForgetWatch(this);  // may destroy this at return
  }

 private:
  // Starts the write chosen under mu_, or finishes the stream once it ends and no write is out.
  void Act() ABSL_LOCKS_EXCLUDED(mu_) {
    bool write = false, finish = false;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (writing_) {
        write = true;
      } else if (ending_ && !finished_) {
        finished_ = true;
        finish = true;
        status = end_status_;
      }
    }
    if (write) StartWrite(&current_);
    if (finish) Finish(status);
  }

  PlacementService* const service_;
  const std::string holder_;
  absl::Mutex mu_;
  std::deque<pb::LeaseEvent> queue_ ABSL_GUARDED_BY(mu_);
  pb::LeaseEvent current_;  // the write in flight (written only when none is)
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
};

grpc::ServerWriteReactor<pb::LeaseEvent>* PlacementService::WatchLeases(grpc::CallbackServerContext*,
                                                                        const pb::WatchLeasesRequest* req) {
  auto watch = std::make_shared<LeaseWatch>(this, req->holder());
  const bool valid = !req->holder().empty() && req->holder().size() <= kMaxHolderLength;
  bool open = false;
  {
    absl::MutexLock lock(&mu_);
    watch_owners_.emplace(watch.get(), watch);  // before any write: OnDone may follow at once
    open = valid && !shutdown_;
    if (open) watches_[req->holder()].push_back(watch);
  }
  if (!valid) {
    watch->End(ToGrpc(absl::InvalidArgumentError(absl::StrCat("holder must be 1..", kMaxHolderLength,
                                                              " characters"))));
  } else if (!open) {
    watch->End(ToGrpc(absl::UnavailableError("placement service shutting down")));
  } else {
    pb::LeaseEvent hello;
    hello.set_incarnation(incarnation_);
    watch->Push(std::move(hello));
  }
  return watch.get();
}

void PlacementService::PushLossLocked(const std::string& holder, LeaseId lease, const std::string& reason,
                                      Answers& answers) {
  auto it = watches_.find(holder);
  if (it == watches_.end()) return;
  pb::LeaseEvent event;
  event.set_incarnation(incarnation_);
  event.set_lease_id(lease);
  event.set_reason(reason);
  for (const std::shared_ptr<LeaseWatch>& w : it->second) answers.events.emplace_back(w, event);
}

std::shared_ptr<PlacementService::LeaseWatch> PlacementService::ForgetWatch(LeaseWatch* watch) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<LeaseWatch> last;
  auto owner = watch_owners_.find(watch);
  if (owner != watch_owners_.end()) {
    last = std::move(owner->second);
    watch_owners_.erase(owner);
  }
  auto it = watches_.find(watch->holder());
  if (it == watches_.end()) return last;
  std::vector<std::shared_ptr<LeaseWatch>>& list = it->second;
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i].get() != watch) continue;
    list.erase(list.begin() + static_cast<std::ptrdiff_t>(i));
    break;
  }
  if (list.empty()) watches_.erase(it);
  return last;
}

void PlacementService::WriteEvents(Answers& answers) {
  for (auto& [watch, event] : answers.events) watch->Push(std::move(event));
  answers.events.clear();
}

void PlacementService::EndWatches(std::vector<std::shared_ptr<LeaseWatch>>& watches) {
  for (const std::shared_ptr<LeaseWatch>& w : watches) {
    w->End(ToGrpc(absl::UnavailableError("placement service shutting down")));
  }
  watches.clear();
}

}  // namespace ferry::control::placement
