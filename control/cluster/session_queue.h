// One node session's outgoing queue: messages wait here, in order, until the session's
// reactor writes them one at a time (gRPC allows one write in flight per stream). The queue
// is bounded: a node that reads too slowly is disconnected rather than allowed to hold the
// coordinator's memory. Pure logic, no locking (NodeSession serialises calls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "proto/coordinator.pb.h"

namespace ferry::control {

struct QueueLimits {
  size_t max_messages = 1 << 16;     // queued, the one in flight included
  size_t max_bytes = 256u << 20;     // serialized size of those
};

class OutQueue {
 public:
  // Shared: one delta goes to every session's queue without a copy.
  using Message = std::shared_ptr<const proto::CoordMessage>;

  explicit OutQueue(QueueLimits limits) : limits_(limits) {}

  // Appends `msg` (`bytes`: its serialized size). False, with nothing queued, if that would
  // exceed a limit; `why` then says which (for the node's death notice).
  [[nodiscard]] bool Push(Message msg, size_t bytes, std::string* why);
  // If no write is in flight and a message waits, it becomes the one in flight and is
  // returned; otherwise null. Consecutive membership deltas at the head are merged into one
  // (MergeDeltas).
  Message StartNext();
  // The write in flight has finished; same as StartNext afterwards.
  Message WriteDone();
  // The write in flight has finished and the stream is going (the write failed, or the
  // session is ending): nothing new becomes in flight, so in_flight() is false afterwards.
  void Retire();
  // Drops everything queued (not the write in flight, which the stream still owns).
  void Clear();

  bool in_flight() const { return in_flight_ != nullptr; }
  size_t messages() const { return queue_.size() + (in_flight_ ? 1 : 0); }
  size_t bytes() const { return bytes_; }

 private:
  struct Item {
    Message msg;
    size_t bytes = 0;
  };
  const QueueLimits limits_;
  std::deque<Item> queue_;
  Message in_flight_;
  std::vector<Message> merged_;   // scratch for StartNext
  size_t in_flight_bytes_ = 0;
  size_t bytes_ = 0;   // queue_ and in_flight_
};

}  // namespace ferry::control
