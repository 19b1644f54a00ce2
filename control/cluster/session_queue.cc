#include "control/cluster/session_queue.h"

#include "absl/strings/str_cat.h"
#include "proto/membership_delta.h"

namespace ferry::control {

bool OutQueue::Push(Message msg, size_t bytes, std::string* why) {
  if (messages() + 1 > limits_.max_messages) {
    *why = absl::StrCat("its outgoing queue is full (", messages(), " messages, limit ", limits_.max_messages,
                        "): it reads too slowly");
    return false;
  }
  if (bytes_ + bytes > limits_.max_bytes) {
    *why = absl::StrCat("its outgoing queue is full (", bytes_, " bytes queued, ", bytes, " more, limit ",
                        limits_.max_bytes, "): it reads too slowly");
    return false;
  }
  queue_.push_back({std::move(msg), bytes});
  bytes_ += bytes;
  return true;
}

namespace {

bool IsDelta(const proto::CoordMessage& m) { return m.has_membership() && !proto::IsSnapshot(m.membership()); }

}  // namespace

OutQueue::Message OutQueue::StartNext() {
  if (in_flight_ != nullptr || queue_.empty()) return nullptr;
  in_flight_ = std::move(queue_.front().msg);
  in_flight_bytes_ = queue_.front().bytes;
  queue_.pop_front();
  if (IsDelta(*in_flight_) && !queue_.empty() && IsDelta(*queue_.front().msg)) {
    // Deltas that queued up while the last write was in flight leave as one message: a
    // registration storm then costs one write per node per write time, not per change.
    std::vector<const proto::Membership*> run{&in_flight_->membership()};
    while (!queue_.empty() && IsDelta(*queue_.front().msg)) {
      run.push_back(&queue_.front().msg->membership());
      in_flight_bytes_ += queue_.front().bytes;
      merged_.push_back(std::move(queue_.front().msg));   // keeps `run` valid
      queue_.pop_front();
    }
    auto merged = std::make_shared<proto::CoordMessage>();
    *merged->mutable_membership() = proto::MergeDeltas(run);
    merged_.clear();
    in_flight_ = std::move(merged);
  }
  return in_flight_;
}

OutQueue::Message OutQueue::WriteDone() {
  Retire();
  return StartNext();
}

void OutQueue::Retire() {
  if (in_flight_ == nullptr) return;
  bytes_ -= in_flight_bytes_;
  in_flight_ = nullptr;
  in_flight_bytes_ = 0;
}

void OutQueue::Clear() {
  for (const Item& i : queue_) bytes_ -= i.bytes;
  queue_.clear();
}

}  // namespace ferry::control
