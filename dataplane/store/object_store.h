// A node's objects: names -> arena ranges, lifecycle (writing / receiving / sealed), pins,
// chunk progress with waiters, LRU eviction of unpinned sealed objects.
//
// Lifecycle
//   Create (client, kWriting) --Seal--> kSealed          Abort / session end: reclaimed
//   CreateReceiving (pull, kReceiving) --chunks land--> FinishReceiving --> kSealed
// A sealed object is immutable. Delete of a pinned object hides it at once and frees its
// space when the last pin goes, so a live view never sees its bytes reused.
//
// Sessions: every client has a session id (> 0); pins and unsealed objects belong to it and
// EndSession releases / reclaims them. Session 0 is ferryd itself (serving, pulling).
//
// Thread-safety: every method is thread-safe. Callbacks (chunk waiters, eviction listener)
// run without the store's lock held, on the thread that caused them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "dataplane/store/allocator.h"
#include "dataplane/store/chunk_progress.h"

namespace ferry::dataplane {

using SessionId = uint64_t;
inline constexpr SessionId kInternalSession = 0;

enum class ObjectState { kWriting, kReceiving, kSealed };

struct StoredMeta {
  uint64_t size = 0;
  uint32_t dtype = 0;   // proto DType value
  uint64_t count = 0;
  uint64_t incarnation = 0;   // which creation of the key (ObjectMeta.incarnation); 0 = unknown
  bool checksummed = false;   // ObjectMeta.checksummed / checksum (filled at Seal)
  uint64_t checksum = 0;
};

struct StoreObject;   // internal

// A pin on an object, returned by the pinning calls. Carries where the bytes are.
struct PinnedObject {
  std::shared_ptr<StoreObject> object;
  uint64_t offset = 0;
  StoredMeta meta;
};

// A chunk ready to be served: [offset, offset+len) of the arena stays valid until the
// matching UnpinServe.
struct ServeSlice {
  std::shared_ptr<StoreObject> object;
  uint64_t offset = 0;
  uint64_t len = 0;
};
using ChunkReady = absl::AnyInvocable<void(absl::StatusOr<ServeSlice>)>;
// Told that a watched object left the store (WatchRemoval).
using RemovalCallback = absl::AnyInvocable<void(absl::Status)>;

// NOT_FOUND for an object that was deleted (Delete), as opposed to one never created or
// evicted: "object <name> was deleted <where>", marked so that IsObjectDeleted holds.
absl::Status ObjectDeletedError(const std::string& ns, const std::string& key, std::string_view where);
// True for a status made by ObjectDeletedError or marked by MarkObjectDeleted.
bool IsObjectDeleted(const absl::Status& status);
// `status` (code and message kept) marked as "the object was deleted".
absl::Status MarkObjectDeleted(absl::Status status);

// ServeChunk's chunk size for "the whole object, once complete".
inline constexpr uint32_t kWholeObject = 0;
// Chunks below kServeMinChunk bytes are served only for objects of at most kServeMaxSmallChunks
// chunks (the engine's kMinChunkSize / kMaxSmallChunks, chunk_request.h).
inline constexpr uint32_t kServeMinChunk = 4096;
inline constexpr uint64_t kServeMaxSmallChunks = 4096;

struct StoreStats {
  uint64_t capacity = 0;
  uint64_t used = 0;
  uint64_t objects = 0;
  uint64_t sealed = 0;
  uint64_t pinned = 0;
  uint64_t evictions = 0;
  uint64_t absent_waiters = 0;   // serve requests held for objects not created yet
  uint64_t chunk_waiters = 0;    // serve requests waiting for a chunk of a partial copy
};

struct ListedLocal {
  std::string ns;
  std::string key;
  StoredMeta meta;
  ObjectState state;
  uint32_t pins;
};

class ObjectStore {
 public:
  using EvictionListener = std::function<void(const std::string& ns, const std::string& key)>;

  ObjectStore(uint64_t capacity, uint64_t alignment = 64);

  // Listener told (outside the lock) whenever a sealed object is evicted or dropped.
  void SetEvictionListener(EvictionListener listener);

  // Allocates a kWriting object owned by `session`. ALREADY_EXISTS, RESOURCE_EXHAUSTED
  // (after evicting every unpinned sealed object that could help), INVALID_ARGUMENT.
  absl::StatusOr<uint64_t> Create(const std::string& ns, const std::string& key,
                                  const StoredMeta& meta, SessionId session);
  // kWriting -> kSealed. NOT_FOUND, FAILED_PRECONDITION (already sealed / receiving),
  // PERMISSION_DENIED (another session's object). `checksum` becomes meta.checksum of a
  // checksummed object (the caller hashed the bytes, pinned, before sealing).
  absl::Status Seal(const std::string& ns, const std::string& key, SessionId session, uint64_t checksum = 0);
  // Discards an unsealed object the session created.
  absl::Status Abort(const std::string& ns, const std::string& key, SessionId session);

  // Pins a sealed object for `session`. NOT_FOUND if absent; FAILED_PRECONDITION if it
  // exists but is not sealed.
  absl::StatusOr<PinnedObject> PinSealed(const std::string& ns, const std::string& key,
                                         SessionId session);
  // Like PinSealed, but waits until `deadline` for an existing unsealed object to be sealed.
  // NOT_FOUND if the object does not exist (or disappears), DEADLINE_EXCEEDED naming it.
  absl::StatusOr<PinnedObject> WaitSealed(const std::string& ns, const std::string& key,
                                          SessionId session, absl::Time deadline);
  // Drops one of `session`'s pins. NOT_FOUND if it holds none.
  absl::Status Release(const std::string& ns, const std::string& key, SessionId session);
  // Pins an object in any state for the internal session (ferryd's own use: a pull keeps
  // its destination alive until every in-flight chunk has completed). NOT_FOUND if absent.
  absl::StatusOr<PinnedObject> PinInternal(const std::string& ns, const std::string& key);
  // Drops a pin returned by PinSealed/WaitSealed/PinInternal for the internal session.
  void Unpin(const PinnedObject& pin);

  // Removes the object (freed when unpinned). NOT_FOUND if absent. Either way the name is
  // remembered as deleted for a while (kTombstoneTtl, at most kMaxTombstones names, until it
  // is created again): requests to serve it, held or later, fail with ObjectDeletedError,
  // and WatchRemoval callbacks on it run with that error.
  absl::Status Delete(const std::string& ns, const std::string& key);
  // A cluster-wide delete of `incarnation` (0: whatever is here) reached this node: removes
  // the object if it is that incarnation (in any state: a receiving copy's chunk waiters fail
  // NOT_FOUND) and remembers the incarnation as deleted, so a copy of it arriving later (a Get
  // or pull still in flight) is refused by CreateReceiving. Returns whether a copy was removed.
  // The memory is bounded (kTombstones most recent incarnations).
  bool Drop(const std::string& ns, const std::string& key, uint64_t incarnation);
  // Whether `incarnation` of the key was dropped (see Drop). False for incarnation 0.
  bool IsDropped(const std::string& ns, const std::string& key, uint64_t incarnation) const;
  static constexpr size_t kTombstones = 1 << 16;
  bool Contains(const std::string& ns, const std::string& key) const;

  // --- receive path (ferryd pulling from a peer) ---
  // Creates a kReceiving object of meta.size bytes tracked in `chunk_size` chunks.
  // NOT_FOUND if meta.incarnation was dropped (the object was deleted meanwhile).
  absl::StatusOr<uint64_t> CreateReceiving(const std::string& ns, const std::string& key,
                                           const StoredMeta& meta, uint32_t chunk_size);
  // Marks chunk k of a receiving object landed and wakes its waiters.
  void MarkChunk(const std::string& ns, const std::string& key, uint32_t k);
  // kReceiving -> kSealed. FAILED_PRECONDITION if chunks are missing.
  absl::Status FinishReceiving(const std::string& ns, const std::string& key);
  // Drops a receiving object (waiters fail with `why`).
  void AbortReceiving(const std::string& ns, const std::string& key, const absl::Status& why);
  // Calls `removed` once (outside the lock, on the removing thread) when this incarnation of
  // the object leaves the store: ObjectDeletedError for Delete, ABORTED for AbortReceiving;
  // other removals (eviction, Abort, EndSession) destroy it unrun. Returns a watch id for Unwatch; NOT_FOUND if the object does not exist.
  absl::StatusOr<uint64_t> WatchRemoval(const std::string& ns, const std::string& key,
                                        RemovalCallback removed);
  // Drops a watch; its callback is destroyed unrun (unless it has run). Unknown ids: no-op.
  void Unwatch(uint64_t watch_id);
  // The chunks still missing of a receiving object (empty when complete).
  absl::StatusOr<std::vector<uint32_t>> MissingChunks(const std::string& ns,
                                                      const std::string& key) const;

  // --- serve path ---
  // Calls `ready` with chunk k of the object (chunk_size as given by the requester) once it
  // has landed: at once for a sealed object, later for a receiving one. The slice is pinned:
  // call UnpinServe when the bytes have been sent. NOT_FOUND if absent, OUT_OF_RANGE for a
  // bad chunk, ABORTED if the partial copy is dropped before the chunk lands,
  // ObjectDeletedError if the object is (or was recently) deleted.
  // An object that does not exist is waited for until `absent_until`: a receiver can be
  // pointed at this node a moment before this node has created its receiving copy. The
  // request is held (at most kMaxAbsentWaiters of them; beyond that NOT_FOUND at once) and
  // served when the object is created, failed when it is deleted, and failed with NOT_FOUND
  // by the first ExpireAbsentWaiters at or after `absent_until`. Returns true if the request
  // is held so: the caller must then run ExpireAbsentWaiters by `absent_until`.
  // chunk_size kWholeObject (with k 0) asks for the whole object once every byte has landed,
  // whatever chunking the partial copy uses (a pack fetch serves whole objects).
  bool ServeChunk(const std::string& ns, const std::string& key, uint32_t chunk_size, uint32_t k,
                  ChunkReady ready, absl::Time absent_until = absl::InfinitePast());
  // Fails the held requests for absent objects whose time has come; returns the earliest
  // time a held request is left waiting until (InfiniteFuture if none).
  absl::Time ExpireAbsentWaiters(absl::Time now);
  static constexpr size_t kMaxAbsentWaiters = 4096;
  static constexpr size_t kMaxTombstones = 4096;
  static constexpr absl::Duration kTombstoneTtl = absl::Seconds(10);
  void UnpinServe(const ServeSlice& slice);

  // Releases every pin of the session and reclaims its unsealed objects.
  void EndSession(SessionId session);

  StoreStats Stats() const;
  std::vector<ListedLocal> List() const;
  // Sealed objects (for re-reporting to a restarted coordinator).
  std::vector<ListedLocal> ListSealed() const;

 private:
  using Key = std::pair<std::string, std::string>;
  using Waiter = std::pair<uint32_t, ChunkReady>;   // (chunk, callback)
  struct AbsentWaiter {
    uint32_t chunk_size;
    uint32_t chunk;
    absl::Time until;
    ChunkReady ready;
  };
  // What leaves with a removed object, to be told outside the lock.
  struct Orphans {
    std::vector<Waiter> waiters;
    std::vector<RemovalCallback> watchers;
    std::vector<ChunkReady> absent;   // held for the name (Delete of an absent object)
  };

  // Create; with receive_chunk_size > 0 the object starts as kReceiving (atomically).
  absl::StatusOr<uint64_t> CreateInState(const std::string& ns, const std::string& key, const StoredMeta& meta,
                                         SessionId session, uint32_t receive_chunk_size);
  absl::StatusOr<uint64_t> AllocateLocked(uint64_t size, std::vector<Key>* evicted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PinLocked(StoreObject& obj, SessionId session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnpinLocked(StoreObject& obj, SessionId session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the object; its waiters and watchers move to `orphans` (destroyed if null).
  void RemoveLocked(const Key& key, Orphans* orphans) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Serves chunk k of `obj` now (true, `*result` set) or queues `ready` as a chunk waiter.
  // ServeLocked for chunk_size kWholeObject.
  bool ServeWholeLocked(const std::shared_ptr<StoreObject>& obj, uint32_t k, ChunkReady& ready,
                        absl::StatusOr<ServeSlice>* result) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The waiter "chunk" of a whole-object request (no chunk has this index: 2^32-1 chunks of at
  // least one byte would be past any arena).
  static constexpr uint32_t kWholeWaiter = 0xffffffffu;
  bool ServeLocked(const std::shared_ptr<StoreObject>& obj, uint32_t chunk_size, uint32_t k,
                   ChunkReady& ready, absl::StatusOr<ServeSlice>* result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsTombstonedLocked(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddTombstoneLocked(const Key& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFreeLocked(StoreObject& obj) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyEvicted(const std::vector<Key>& evicted);
  // Delete (incarnation 0) and Drop: removes the object unless it is of another incarnation
  // than a non-zero `incarnation`; true if a copy was removed.
  bool Remove(const std::string& ns, const std::string& key, uint64_t incarnation);
  bool IsDroppedLocked(const Key& key, uint64_t incarnation) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // Invariants: every object in objects_ owns one allocator block; an object is in lru_
  // iff it is sealed, in objects_, and has no pins; removed-but-pinned objects are kept
  // alive by their pins' shared_ptr and free their block when the last pin goes.
  Allocator allocator_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<Key, std::shared_ptr<StoreObject>> objects_ ABSL_GUARDED_BY(mu_);
  std::list<StoreObject*> lru_ ABSL_GUARDED_BY(mu_);   // front = least recently used
  // Removed objects still pinned (deleted or evicted while a view was open).
  std::vector<std::shared_ptr<StoreObject>> zombies_ ABSL_GUARDED_BY(mu_);
  uint64_t evictions_ ABSL_GUARDED_BY(mu_) = 0;
  // Dropped incarnations: key -> the newest dropped incarnation, oldest entry first in order.
  absl::flat_hash_map<Key, uint64_t> dropped_ ABSL_GUARDED_BY(mu_);
  std::deque<Key> dropped_order_ ABSL_GUARDED_BY(mu_);
  // Serve requests for names not in objects_, by name; absent_count_ counts them all.
  absl::flat_hash_map<Key, std::vector<AbsentWaiter>> absent_ ABSL_GUARDED_BY(mu_);
  size_t absent_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Recently deleted names -> when they stop counting as deleted; tombstone_order_ holds the
  // same entries oldest first (an entry whose time no longer matches the map is stale).
  absl::flat_hash_map<Key, absl::Time> tombstones_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<Key, absl::Time>> tombstone_order_ ABSL_GUARDED_BY(mu_);
  // Removal watches: id -> callback; each object lists the ids watching it.
  absl::flat_hash_map<uint64_t, RemovalCallback> watches_ ABSL_GUARDED_BY(mu_);
  uint64_t next_watch_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::CondVar sealed_cv_;   // signalled (with or without mu_) when an object seals or goes
  EvictionListener eviction_listener_;
};

}  // namespace ferry::dataplane
