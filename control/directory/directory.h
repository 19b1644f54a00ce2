// The object directory: key -> metadata, inline bytes (small objects) and the copies the
// broadcast planner tracks. Pure logic, no locking: the Coordinator calls it under its lock (control/coordinator.h).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "control/planner/broadcast_planner.h"
#include "control/planner/cost_model.h"
#include "proto/coordinator.pb.h"

namespace ferry::control {

// "ns/key" of `ref` in printable form, for messages (core/names.h PrintableName).
std::string RefName(const proto::ObjectRef& ref);

struct DirectoryOptions {
  uint32_t inline_max_bytes = 64 * 1024;
  PlanLimits limits;
};

struct AcquireResult {
  proto::ObjectMeta meta;
  bool is_inline = false;
  std::string inline_data;
  NodeId sender = 0;
  bool sender_complete = false;
  uint32_t chunk_size = 0;
  uint32_t window = 0;
  bool receiver_has_copy = false;   // the receiver holds a complete copy itself: no sender
};

class Directory {
 public:
  using Key = std::pair<std::string, std::string>;   // (namespace, key)

  explicit Directory(DirectoryOptions options) : options_(std::move(options)) {}

  // `node` holds a complete copy. The first Publish of a key fixes its metadata and plan
  // (chunk size, fanout) from `link` and `receivers`; later ones must match the size
  // (ALREADY_EXISTS naming both sizes otherwise). A lost object is revived.
  // Keys are unique cluster-wide: publishing a key that already exists from a node that holds
  // no copy of it is ALREADY_EXISTS, unless `rereport` (a node re-registering what it held).
  // A deleted incarnation (see WasDeleted) is NOT_FOUND, and so is a re-report of another
  // incarnation than the live one: the caller tells the node to drop that copy.
  absl::Status Publish(NodeId node, const proto::ObjectRef& ref, const proto::ObjectMeta& meta,
                       std::string inline_data, const LinkModel& link, uint64_t receivers,
                       bool rereport = false);
  // An inline object the coordinator made itself (a small reduce's result, combined from its
  // inputs' inline bytes): an entry with the bytes and no copy yet. Receivers get the bytes from
  // the coordinator (Acquire, an explicit broadcast's instruction) and become copies as they
  // complete. ALREADY_EXISTS if the key exists, INVALID_ARGUMENT if the object is too large to
  // be inline or the bytes do not match its size.
  absl::Status CreateInline(const proto::ObjectRef& ref, const proto::ObjectMeta& meta, std::string bytes,
                            const LinkModel& link, uint64_t receivers);
  // An object `node` is producing itself (an AllReduce's result while its root combines it): an
  // entry with the node as a producing copy (BroadcastPlanner::AddProducer) that receivers
  // attach to and pull from as chunks are made, in chunks of `chunk_size` (what the node tracks).
  // The node's Publish, once it holds the whole object, makes its copy complete. ALREADY_EXISTS
  // if the key exists; a deleted incarnation is NOT_FOUND as for Publish.
  absl::Status PublishProducing(NodeId node, const proto::ObjectRef& ref, const proto::ObjectMeta& meta,
                                const LinkModel& link, uint64_t receivers, uint32_t chunk_size);
  // `node` (named `node_name`) no longer holds its copy. With `evicted`, the node's arena
  // evicted it: if that was the last copy, the object stays known as lost ("evicted from node
  // ...") so that a Get says so; otherwise the entry goes when no copy is left.
  void Unpublish(NodeId node, const std::string& node_name, const proto::ObjectRef& ref, bool evicted);
  // Whether `incarnation` (non-zero) of the key was deleted recently (the kTombstones newest
  // deletes are remembered; coordinator state is soft, so not across a restart).
  bool WasDeleted(const proto::ObjectRef& ref, uint64_t incarnation) const;
  static constexpr size_t kTombstones = 1 << 16;
  // Whether a copy of `incarnation` (non-zero) can no longer complete: that incarnation was
  // deleted, or the key lives on as another one.
  bool IsDeletedIncarnation(const proto::ObjectRef& ref, uint64_t incarnation) const;

  // Picks a sender for `receiver` (see BroadcastPlanner::Attach). NOT_FOUND if the key is
  // unknown (the caller may wait for it), UNAVAILABLE if every copy is busy (wait),
  // DATA_LOSS naming the lost holders if no live node holds a complete copy. A receiver
  // that holds a complete copy itself gets receiver_has_copy. A receiver of an inline
  // object is recorded as a partial copy, so that a Delete reaches it.
  // `distance`: how far each holder is from the receiver (nearer copies first).
  absl::StatusOr<AcquireResult> Acquire(NodeId receiver, const proto::ObjectRef& ref,
                                        const absl::flat_hash_set<NodeId>& exclude,
                                        const SenderDistance& distance = nullptr);
  // The receiver holds a complete copy of `incarnation` (0: unknown). False if that is not
  // the live incarnation of the key (deleted, or deleted and created again): the caller
  // tells the receiver to drop it.
  [[nodiscard]] bool Completed(NodeId receiver, const proto::ObjectRef& ref, uint64_t incarnation);
  // A receiver's report about its copy of `incarnation` (0: unknown). A report about another
  // incarnation than the live one is stale (its copy was of a deleted object) and changes nothing.
  void SenderFailed(NodeId receiver, const proto::ObjectRef& ref, uint64_t incarnation = 0);
  // `receiver` is being sent an inline object's bytes (an explicit broadcast's instruction
  // carries them): it is recorded as a partial copy so that a Delete reaches it.
  void InlineReceiver(NodeId receiver, const proto::ObjectRef& ref);
  void Aborted(NodeId receiver, const proto::ObjectRef& ref, uint64_t incarnation = 0);
  // `receiver` is receiving a copy outside the object's own plan (a batch broadcast pulls it
  // from the batch's sender): recorded as a partial copy that serves no one until it completes,
  // so that a Delete reaches it. No-op for an unknown key or a node that has a copy already.
  void ExternalReceiver(NodeId receiver, const proto::ObjectRef& ref);

  // Drops every copy on `node`. Objects left with no complete copy become lost; their keys
  // are returned.
  std::vector<Key> RemoveNode(NodeId node, const std::string& node_name);

  // Removes the entry and remembers its incarnation as deleted; returns the nodes holding
  // copies, partial or complete (to be told to drop them), and the incarnation.
  struct Deleted {
    std::vector<NodeId> holders;
    uint64_t incarnation = 0;
  };
  absl::StatusOr<Deleted> Delete(const proto::ObjectRef& ref);

  // NOT_FOUND if unknown; DATA_LOSS if lost.
  absl::StatusOr<proto::LocateReply> Locate(const proto::ObjectRef& ref) const;
  std::vector<proto::ListEntry> List(const std::string& ns, const std::string& prefix,
                                     uint32_t limit) const;
  bool IsComplete(NodeId node, const proto::ObjectRef& ref) const;
  // Whether the node holds a copy of the object, partial or complete, in its plan.
  bool HasCopy(NodeId node, const proto::ObjectRef& ref) const;
  // Whether the node is producing the object (PublishProducing) and has not published it yet.
  bool IsProducing(NodeId node, const proto::ObjectRef& ref) const;
  // What a batch needs of one object: its metadata, chunk size and the nodes that hold it
  // complete (ascending ids).
  struct ObjectView {
    proto::ObjectMeta meta;
    uint32_t chunk_size = 0;
    std::vector<NodeId> complete;
  };
  // NOT_FOUND if unknown; DATA_LOSS if lost (the messages Locate gives).
  absl::StatusOr<ObjectView> View(const proto::ObjectRef& ref) const;
  // The bytes of an inline object (and its metadata), or null if the object is not inline.
  const std::string* InlineData(const proto::ObjectRef& ref, proto::ObjectMeta* meta) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    proto::ObjectMeta meta;
    bool is_inline = false;
    std::string inline_data;
    BroadcastPlan plan;
    BroadcastPlanner planner{1};
    bool lost = false;
    std::string lost_detail;
  };

  // Whether `incarnation` (0: unknown, never stale) is not the entry's live one.
  static bool IsStale(const Entry& e, uint64_t incarnation);
  std::map<Key, Entry>::iterator Find(const proto::ObjectRef& ref);
  std::map<Key, Entry>::const_iterator Find(const proto::ObjectRef& ref) const;
  // Files a fresh entry (replacing a lost one) with its broadcast plan; no copies yet.
  Entry& NewEntry(const proto::ObjectRef& ref, const proto::ObjectMeta& meta, std::string inline_data, bool is_inline,
                  const LinkModel& link, uint64_t receivers);

  DirectoryOptions options_;
  std::map<Key, Entry> entries_;
  std::map<Key, uint64_t> deleted_;     // key -> newest deleted incarnation
  std::deque<Key> deleted_order_;       // oldest first, at most kTombstones
};

}  // namespace ferry::control
