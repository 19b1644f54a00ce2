// Value types of the public API: object names, metadata, listings and status.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include <string_view>
#include <vector>

namespace ferry {

enum class DType : uint8_t { kBytes = 0, kF32, kF64, kF16, kBF16, kI32, kI64, kU8 };
enum class ReduceOp : uint8_t { kSum = 1, kProd, kMin, kMax };

// Size in bytes of one element (1 for kBytes; 0 for a value outside the enum).
size_t DTypeSize(DType dtype);
// "bytes", "f32", "f64", "f16", "bf16", "i32", "i64", "u8" ("?" outside the enum).
const char* DTypeName(DType dtype);
// Inverse of DTypeName, case-insensitive; nullopt for an unknown name.
std::optional<DType> DTypeFromName(std::string_view name);

// An object's name: namespace (1-64 chars of [A-Za-z0-9_.-]) and key (1-256 bytes).
struct ObjectName {
  std::string ns = "default";
  std::string key;
};

struct ObjectMeta {
  uint64_t size = 0;
  DType dtype = DType::kBytes;
  uint64_t count = 0;   // elements; 0 means size / DTypeSize(dtype)
  // End-to-end integrity: ferryd hashes the bytes at Seal (XXH3-64), and every node that
  // receives a copy verifies the hash before using it; a corrupted copy is dropped and fetched
  // again from another holder (DATA_LOSS if none has good bytes). Costs one pass over the
  // bytes at Seal and one per received copy.
  bool checksum = false;
};

// How a Get obtained its object.
struct GetInfo {
  bool pulled = false;        // moved from another node by this call
  uint64_t source_node = 0;   // node it was (last) pulled from
  double seconds = 0;         // time spent pulling
};

struct ObjectInfo {
  ObjectName name;
  ObjectMeta meta;
  uint32_t complete_copies = 0;
  uint32_t partial_copies = 0;
};

struct NodeInfo {
  uint64_t id = 0;
  std::string name;
  bool alive = false;
  uint64_t arena_bytes = 0;
  uint64_t arena_used = 0;
  uint64_t objects = 0;
  double bandwidth_bps = 0;
  double latency_s = 0;
  std::map<std::string, std::string> labels;
};

struct NodeStatus {
  NodeInfo self;
  bool coordinator_connected = false;
  uint64_t pinned = 0;
  uint64_t evictions = 0;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t retries = 0;
  uint64_t failures = 0;
  std::vector<NodeInfo> cluster;
};

struct BroadcastResult {
  struct Target {
    std::string node;
    bool ok = false;
    std::string error;
  };
  std::vector<Target> targets;
  double seconds = 0;
};

// The outcome of a reduce or all-reduce (Client::Reduce, Client::AllReduce).
struct ReduceResult {
  ObjectName result;
  ObjectMeta meta;                 // of the result
  std::string root_node;           // the node that built the result
  std::vector<uint32_t> used;      // indices into the inputs whose data is in the result
  // AllReduce: one per participant (every node whose input was ready): ok when it holds the result.
  std::vector<BroadcastResult::Target> copies;
  double seconds = 0;
};

// A static group (Client::CreateGroup): members with fixed ranks; members on one host are
// adjacent. A member's death revokes it for good (delete it and create another).
struct GroupMember {
  uint32_t rank = 0;
  uint64_t node_id = 0;
  std::string node;        // the node's name
  std::string host;        // its "host" label, else its name
};
struct GroupInfo {
  std::string name;
  uint64_t id = 0;
  std::vector<GroupMember> members;   // in rank order
  bool revoked = false;
  std::string revoked_why;            // which member died, and how
  uint64_t collectives = 0;           // collectives completed on it
  uint64_t lease_id = 0;              // the placement lease it was made from (0: none)
};
// The collectives of a static group (Client::GroupCollective), run as pipelined rings.
enum class GroupOp : uint8_t {
  kAllReduce = 1,       // every rank: op over all inputs
  kReduceScatter,       // rank r: the r-th of N equal segments of the reduced object
  kAllGather,           // every rank: the inputs concatenated in rank order
  kBroadcast,           // every rank: a copy of the root's input
  kReduce,              // the root: op over all inputs
};
// "allreduce", "reduce-scatter", "allgather", "broadcast", "reduce" ("?" otherwise).
const char* GroupOpName(GroupOp op);
std::optional<GroupOp> GroupOpFromName(std::string_view name);
struct GroupResult {
  ObjectName result;
  ObjectMeta meta;                    // of the result (reduce-scatter: rank 0's segment)
  std::vector<std::string> nodes;     // the nodes that hold the result, in rank order
  double seconds = 0;
  // The group could not run it and the caller allowed a retry on a dynamic tree
  // (GroupCollectiveOptions::dynamic_fallback): `used` lists the ranks whose inputs are in
  // the result (those whose member was alive), and `nodes` the copies made.
  bool dynamic = false;
  std::vector<uint32_t> used;
};

// The outcome of a batch broadcast (Client::BroadcastBatch): per target, and per entry that
// failed somewhere.
struct BatchBroadcastResult {
  struct EntryError {
    size_t index = 0;        // into the names given
    std::string node;        // the target that lacks it; empty: every target (e.g. no such object)
    absl::StatusCode code = absl::StatusCode::kUnknown;
    std::string error;
  };
  std::vector<BroadcastResult::Target> targets;   // ok: holds every entry
  std::vector<EntryError> errors;
  double seconds = 0;
  uint64_t bytes = 0;      // total size of the batch's objects
  bool ok() const {
    for (const BroadcastResult::Target& t : targets) {
      if (!t.ok) return false;
    }
    return errors.empty();
  }
};

}  // namespace ferry
