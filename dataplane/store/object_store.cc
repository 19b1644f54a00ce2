#include "dataplane/store/object_store.h"

#include <optional>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "core/names.h"

namespace ferry::dataplane {

struct StoreObject {
  std::string ns;
  std::string key;
  StoredMeta meta;
  uint64_t offset = 0;
  ObjectState state = ObjectState::kWriting;
  SessionId owner = kInternalSession;
  std::map<SessionId, uint32_t> pins;   // session -> pin count
  uint32_t serve_pins = 0;
  uint32_t total_pins = 0;
  bool removed = false;                 // no longer in objects_; free when unpinned
  bool freed = false;
  std::optional<ChunkProgress> progress;   // kReceiving only
  std::vector<std::pair<uint32_t, ChunkReady>> waiters;
  std::vector<uint64_t> watch_ids;   // WatchRemoval ids (some may have been Unwatch'ed)
  std::list<StoreObject*>::iterator lru_pos;
  bool in_lru = false;
};

namespace {

std::string Name(const std::string& ns, const std::string& key) { return PrintableName(ns, key); }

constexpr char kDeletedPayload[] = "type.ferry/object_deleted";

}  // namespace

absl::Status ObjectDeletedError(const std::string& ns, const std::string& key, std::string_view where) {
  return MarkObjectDeleted(absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " was deleted ", std::string(where))));
}

bool IsObjectDeleted(const absl::Status& status) {
  return status.code() == absl::StatusCode::kNotFound && status.GetPayload(kDeletedPayload).has_value();
}

absl::Status MarkObjectDeleted(absl::Status status) {
  status.SetPayload(kDeletedPayload, absl::Cord("1"));
  return status;
}

ObjectStore::ObjectStore(uint64_t capacity, uint64_t alignment) : allocator_(capacity, alignment) {}

void ObjectStore::SetEvictionListener(EvictionListener listener) {
  absl::MutexLock lock(&mu_);
  eviction_listener_ = std::move(listener);
}

absl::StatusOr<uint64_t> ObjectStore::AllocateLocked(uint64_t size, std::vector<Key>* evicted) {
  absl::StatusOr<uint64_t> offset = allocator_.Allocate(size);
  if (offset.ok() || size > allocator_.capacity()) return offset;
  // Evict only if freeing every evictable object would leave a block large enough: pinned
  // objects may fragment the arena so that no amount of eviction helps, and then nothing is
  // evicted for a request that fails anyway.
  Allocator trial = allocator_;
  for (StoreObject* o : lru_) trial.Free(o->offset).IgnoreError();
  if (trial.largest_free() < allocator_.BlockSize(size)) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "arena full: ", size, " bytes requested, ", allocator_.free_bytes(), " of ", allocator_.capacity(),
        " free, and evicting every unpinned object would not make a large enough block (the rest is pinned "
        "or unsealed)"));
  }
  while (!lru_.empty()) {
    StoreObject* victim = lru_.front();
    Key k{victim->ns, victim->key};
    evicted->push_back(k);
    ++evictions_;
    RemoveLocked(k, nullptr);
    offset = allocator_.Allocate(size);
    if (offset.ok()) return offset;
  }
  return offset;
}

absl::StatusOr<uint64_t> ObjectStore::Create(const std::string& ns, const std::string& key,
                                             const StoredMeta& meta, SessionId session) {
  return CreateInState(ns, key, meta, session, 0);
}

absl::StatusOr<uint64_t> ObjectStore::CreateInState(const std::string& ns, const std::string& key,
                                                    const StoredMeta& meta, SessionId session,
                                                    uint32_t receive_chunk_size) {
  if (absl::Status s = ValidateObjectName(ns, key); !s.ok()) return s;
  std::vector<Key> evicted;
  absl::StatusOr<uint64_t> result;
  std::vector<std::pair<ChunkReady, absl::StatusOr<ServeSlice>>> answered;   // held requests
  {
    absl::MutexLock lock(&mu_);
    if (objects_.contains(Key{ns, key})) {
      return absl::AlreadyExistsError(absl::StrCat("object ", Name(ns, key), " already exists"));
    }
    if (receive_chunk_size > 0 && IsDroppedLocked(Key{ns, key}, meta.incarnation)) {
      return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " was deleted (incarnation ",
                                              meta.incarnation, ")"));
    }
    if (meta.size > allocator_.capacity()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "object ", Name(ns, key), " of ", meta.size, " bytes is larger than the arena (",
          allocator_.capacity(), " bytes)"));
    }
    result = AllocateLocked(meta.size, &evicted);
    if (result.ok()) {
      auto obj = std::make_shared<StoreObject>();
      obj->ns = ns;
      obj->key = key;
      obj->meta = meta;
      obj->offset = *result;
      obj->owner = session;
      obj->state = ObjectState::kWriting;
      if (receive_chunk_size > 0) {   // a partial copy, visible as such from its first moment
        obj->state = ObjectState::kReceiving;
        obj->progress.emplace(meta.size, receive_chunk_size);
      }
      tombstones_.erase(Key{ns, key});   // a new incarnation
      auto held = absent_.extract(Key{ns, key});
      if (!held.empty()) {
        absent_count_ -= held.mapped().size();
        for (AbsentWaiter& w : held.mapped()) {
          absl::StatusOr<ServeSlice> slice;
          if (ServeLocked(obj, w.chunk_size, w.chunk, w.ready, &slice)) {
            answered.emplace_back(std::move(w.ready), std::move(slice));
          }
        }
      }
      objects_.emplace(Key{ns, key}, std::move(obj));
    } else {
      result = absl::Status(result.status().code(),
                            absl::StrCat("cannot create ", Name(ns, key), ": ",
                                         result.status().message()));
    }
  }
  NotifyEvicted(evicted);
  for (auto& [ready, slice] : answered) ready(std::move(slice));
  return result;
}

absl::Status ObjectStore::Seal(const std::string& ns, const std::string& key, SessionId session, uint64_t checksum) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{ns, key});
  if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
  StoreObject& obj = *it->second;
  if (obj.state == ObjectState::kSealed) {
    return absl::FailedPreconditionError(absl::StrCat("object ", Name(ns, key), " is already sealed"));
  }
  if (obj.state == ObjectState::kReceiving) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", Name(ns, key), " is being received from another node"));
  }
  if (obj.owner != session) {
    return absl::PermissionDeniedError(
        absl::StrCat("object ", Name(ns, key), " was created by another client"));
  }
  obj.state = ObjectState::kSealed;
  if (obj.meta.checksummed) obj.meta.checksum = checksum;
  if (obj.total_pins == 0) {
    obj.lru_pos = lru_.insert(lru_.end(), &obj);
    obj.in_lru = true;
  }
  sealed_cv_.SignalAll();
  return absl::OkStatus();
}

absl::Status ObjectStore::Abort(const std::string& ns, const std::string& key, SessionId session) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{ns, key});
  if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
  if (it->second->state != ObjectState::kWriting) {
    return absl::FailedPreconditionError(
        absl::StrCat("object ", Name(ns, key), " is not being written; only unsealed objects can be aborted"));
  }
  if (it->second->owner != session) {
    return absl::PermissionDeniedError(absl::StrCat("object ", Name(ns, key), " was created by another client"));
  }
  RemoveLocked(it->first, nullptr);
  sealed_cv_.SignalAll();
  return absl::OkStatus();
}

void ObjectStore::PinLocked(StoreObject& obj, SessionId session) {
  ++obj.pins[session];
  ++obj.total_pins;
  if (obj.in_lru) {
    lru_.erase(obj.lru_pos);
    obj.in_lru = false;
  }
}

void ObjectStore::UnpinLocked(StoreObject& obj, SessionId session) {
  auto it = obj.pins.find(session);
  if (it == obj.pins.end()) return;
  if (--it->second == 0) obj.pins.erase(it);
  --obj.total_pins;
  if (obj.total_pins == 0 && obj.serve_pins == 0) {
    if (obj.removed) {
      MaybeFreeLocked(obj);
    } else if (obj.state == ObjectState::kSealed && !obj.in_lru) {
      obj.lru_pos = lru_.insert(lru_.end(), &obj);
      obj.in_lru = true;
    }
  }
}

absl::StatusOr<PinnedObject> ObjectStore::PinSealed(const std::string& ns, const std::string& key,
                                                    SessionId session) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{ns, key});
  if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
  if (it->second->state != ObjectState::kSealed) {
    return absl::FailedPreconditionError(absl::StrCat("object ", Name(ns, key), " is not sealed yet"));
  }
  PinLocked(*it->second, session);
  return PinnedObject{it->second, it->second->offset, it->second->meta};
}

absl::StatusOr<PinnedObject> ObjectStore::WaitSealed(const std::string& ns, const std::string& key,
                                                     SessionId session, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (true) {
    auto it = objects_.find(Key{ns, key});
    if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
    if (it->second->state == ObjectState::kSealed) {
      PinLocked(*it->second, session);
      return PinnedObject{it->second, it->second->offset, it->second->meta};
    }
    absl::Time now = absl::Now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "object ", Name(ns, key), " exists on this node but was not sealed before the deadline (",
          it->second->state == ObjectState::kWriting ? "another client is still writing it"
                                                     : "it is still being received",
          ")"));
    }
    sealed_cv_.WaitWithTimeout(&mu_, std::min(deadline - now, absl::Milliseconds(200)));
  }
}

absl::Status ObjectStore::Release(const std::string& ns, const std::string& key, SessionId session) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{ns, key});
  if (it != objects_.end() && it->second->pins.contains(session)) {
    UnpinLocked(*it->second, session);
    return absl::OkStatus();
  }
  // The object may have been deleted while pinned.
  for (const std::shared_ptr<StoreObject>& z : zombies_) {
    if (z->ns == ns && z->key == key && z->pins.contains(session)) {
      std::shared_ptr<StoreObject> keep = z;   // UnpinLocked may drop it from zombies_
      UnpinLocked(*keep, session);
      return absl::OkStatus();
    }
  }
  return absl::NotFoundError(absl::StrCat("no pin on object ", Name(ns, key), " held by this client"));
}

absl::StatusOr<PinnedObject> ObjectStore::PinInternal(const std::string& ns, const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{ns, key});
  if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
  PinLocked(*it->second, kInternalSession);
  return PinnedObject{it->second, it->second->offset, it->second->meta};
}

void ObjectStore::Unpin(const PinnedObject& pin) {
  if (!pin.object) return;
  absl::MutexLock lock(&mu_);
  UnpinLocked(*pin.object, kInternalSession);
}

absl::Status ObjectStore::Delete(const std::string& ns, const std::string& key) {
  if (!Remove(ns, key, 0)) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
  return absl::OkStatus();
}

bool ObjectStore::Remove(const std::string& ns, const std::string& key, uint64_t incarnation) {
  Orphans orphans;
  bool found;
  {
    absl::MutexLock lock(&mu_);
    const Key name{ns, key};
    if (incarnation != 0) {
      auto [it, inserted] = dropped_.insert_or_assign(name, incarnation);
      if (inserted) dropped_order_.push_back(name);
      while (dropped_order_.size() > kTombstones) {
        dropped_.erase(dropped_order_.front());
        dropped_order_.pop_front();
      }
    }
    auto it = objects_.find(name);
    // A copy of another incarnation (the key was created again since) is not ours to remove;
    // a copy of unknown incarnation (0) is, as before incarnations existed.
    if (it != objects_.end() && incarnation != 0 && it->second->meta.incarnation != 0 &&
        it->second->meta.incarnation != incarnation) {
      return false;
    }
    AddTombstoneLocked(name);
    auto held = absent_.extract(name);
    if (!held.empty()) {
      absent_count_ -= held.mapped().size();
      for (AbsentWaiter& w : held.mapped()) orphans.absent.push_back(std::move(w.ready));
    }
    found = it != objects_.end();
    if (found) RemoveLocked(it->first, &orphans);
    sealed_cv_.SignalAll();
  }
  const absl::Status why = ObjectDeletedError(ns, key, "on this node");
  for (auto& [k, cb] : orphans.waiters) cb(why);
  for (ChunkReady& cb : orphans.absent) cb(why);
  for (RemovalCallback& cb : orphans.watchers) cb(why);
  return found;
}

bool ObjectStore::Drop(const std::string& ns, const std::string& key, uint64_t incarnation) {
  return Remove(ns, key, incarnation);
}

bool ObjectStore::IsDroppedLocked(const Key& key, uint64_t incarnation) const {
  if (incarnation == 0) return false;
  auto it = dropped_.find(key);
  return it != dropped_.end() && it->second == incarnation;
}

bool ObjectStore::IsDropped(const std::string& ns, const std::string& key, uint64_t incarnation) const {
  absl::MutexLock lock(&mu_);
  return IsDroppedLocked(Key{ns, key}, incarnation);
}

bool ObjectStore::IsTombstonedLocked(const Key& key) {
  auto it = tombstones_.find(key);
  if (it == tombstones_.end()) return false;
  if (it->second > absl::Now()) return true;
  tombstones_.erase(it);
  return false;
}

void ObjectStore::AddTombstoneLocked(const Key& key) {
  const absl::Time now = absl::Now();
  const absl::Time until = now + kTombstoneTtl;
  tombstones_[key] = until;
  tombstone_order_.emplace_back(key, until);
  while (!tombstone_order_.empty() &&
         (tombstone_order_.size() > kMaxTombstones || tombstone_order_.front().second <= now)) {
    auto& [k, t] = tombstone_order_.front();
    auto it = tombstones_.find(k);
    if (it != tombstones_.end() && it->second == t) tombstones_.erase(it);
    tombstone_order_.pop_front();
  }
}

absl::StatusOr<uint64_t> ObjectStore::WatchRemoval(const std::string& ns, const std::string& key,
                                                   RemovalCallback removed) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{ns, key});
  if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
  const uint64_t id = next_watch_id_++;
  watches_.emplace(id, std::move(removed));
  it->second->watch_ids.push_back(id);
  return id;
}

void ObjectStore::Unwatch(uint64_t watch_id) {
  RemovalCallback dropped;   // destroyed outside the lock
  absl::MutexLock lock(&mu_);
  auto it = watches_.find(watch_id);
  if (it == watches_.end()) return;
  dropped = std::move(it->second);
  watches_.erase(it);
}

bool ObjectStore::Contains(const std::string& ns, const std::string& key) const {
  absl::MutexLock lock(&mu_);
  return objects_.contains(Key{ns, key});
}

void ObjectStore::RemoveLocked(const Key& key, Orphans* orphans) {
  auto it = objects_.find(key);
  if (it == objects_.end()) return;
  std::shared_ptr<StoreObject> obj = it->second;
  objects_.erase(it);
  obj->removed = true;
  if (obj->in_lru) {
    lru_.erase(obj->lru_pos);
    obj->in_lru = false;
  }
  for (uint64_t id : obj->watch_ids) {
    auto w = watches_.find(id);
    if (w == watches_.end()) continue;
    if (orphans != nullptr) orphans->watchers.push_back(std::move(w->second));
    watches_.erase(w);
  }
  obj->watch_ids.clear();
  if (orphans != nullptr) {
    for (auto& w : obj->waiters) orphans->waiters.push_back(std::move(w));
  }
  obj->waiters.clear();
  MaybeFreeLocked(*obj);
  if (!obj->freed) zombies_.push_back(obj);
}

void ObjectStore::MaybeFreeLocked(StoreObject& obj) {
  if (!obj.removed || obj.freed || obj.total_pins > 0 || obj.serve_pins > 0) return;
  obj.freed = true;
  allocator_.Free(obj.offset).IgnoreError();   // cannot fail: the block is ours
  std::erase_if(zombies_, [&obj](const std::shared_ptr<StoreObject>& z) { return z.get() == &obj; });
}

void ObjectStore::NotifyEvicted(const std::vector<Key>& evicted) {
  if (evicted.empty()) return;
  EvictionListener listener;
  {
    absl::MutexLock lock(&mu_);
    listener = eviction_listener_;
  }
  if (!listener) return;
  for (const Key& k : evicted) listener(k.first, k.second);
}

absl::StatusOr<uint64_t> ObjectStore::CreateReceiving(const std::string& ns, const std::string& key,
                                                      const StoredMeta& meta, uint32_t chunk_size) {
  if (chunk_size == 0) return absl::InvalidArgumentError("chunk size must be > 0");
  return CreateInState(ns, key, meta, kInternalSession, chunk_size);
}

void ObjectStore::MarkChunk(const std::string& ns, const std::string& key, uint32_t k) {
  std::vector<std::pair<ChunkReady, ServeSlice>> ready;
  {
    absl::MutexLock lock(&mu_);
    auto it = objects_.find(Key{ns, key});
    if (it == objects_.end() || !it->second->progress) return;
    StoreObject& obj = *it->second;
    if (!obj.progress->MarkLanded(k)) return;
    auto& waiters = obj.waiters;
    for (size_t i = 0; i < waiters.size();) {
      uint32_t want = waiters[i].first;
      if (want == kWholeWaiter) {   // waits for every byte
        if (obj.progress->complete()) {
          ++obj.serve_pins;
          ready.emplace_back(std::move(waiters[i].second), ServeSlice{it->second, obj.offset, obj.meta.size});
          waiters[i] = std::move(waiters.back());
          waiters.pop_back();
        } else {
          ++i;
        }
        continue;
      }
      // Waiters use this object's chunking: ServeChunk refuses other chunk sizes.
      if (obj.progress->Has(want)) {
        auto [first, len] = obj.progress->ChunkRange(want);
        ++obj.serve_pins;
        ready.emplace_back(std::move(waiters[i].second), ServeSlice{it->second, obj.offset + first, len});
        waiters[i] = std::move(waiters.back());
        waiters.pop_back();
      } else {
        ++i;
      }
    }
  }
  for (auto& [cb, slice] : ready) cb(std::move(slice));
}

absl::Status ObjectStore::FinishReceiving(const std::string& ns, const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{ns, key});
  if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
  StoreObject& obj = *it->second;
  if (obj.state != ObjectState::kReceiving) {
    return absl::FailedPreconditionError(absl::StrCat("object ", Name(ns, key), " is not being received"));
  }
  if (!obj.progress->complete()) {
    return absl::FailedPreconditionError(absl::StrCat("object ", Name(ns, key), " has ",
                                                      obj.progress->num_chunks() - obj.progress->landed(),
                                                      " chunks missing"));
  }
  obj.state = ObjectState::kSealed;
  obj.owner = kInternalSession;
  if (obj.total_pins == 0 && obj.serve_pins == 0) {
    obj.lru_pos = lru_.insert(lru_.end(), &obj);
    obj.in_lru = true;
  }
  sealed_cv_.SignalAll();
  return absl::OkStatus();
}

void ObjectStore::AbortReceiving(const std::string& ns, const std::string& key, const absl::Status& why) {
  Orphans orphans;
  {
    absl::MutexLock lock(&mu_);
    auto it = objects_.find(Key{ns, key});
    if (it == objects_.end() || it->second->state != ObjectState::kReceiving) return;
    RemoveLocked(it->first, &orphans);
    sealed_cv_.SignalAll();
  }
  const absl::Status dropped =
      absl::AbortedError(absl::StrCat("partial copy of ", Name(ns, key), " was dropped: ", why.message()));
  for (auto& [k, cb] : orphans.waiters) cb(dropped);
  for (RemovalCallback& cb : orphans.watchers) cb(dropped);
}

absl::StatusOr<std::vector<uint32_t>> ObjectStore::MissingChunks(const std::string& ns,
                                                                 const std::string& key) const {
  absl::MutexLock lock(&mu_);
  auto it = objects_.find(Key{ns, key});
  if (it == objects_.end()) return absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found"));
  std::vector<uint32_t> missing;
  const auto& p = it->second->progress;
  if (!p) return missing;
  for (std::optional<uint32_t> k = p->NextMissing(0); k; k = p->NextMissing(*k + 1)) missing.push_back(*k);
  return missing;
}

bool ObjectStore::ServeWholeLocked(const std::shared_ptr<StoreObject>& ptr, uint32_t k, ChunkReady& ready,
                                   absl::StatusOr<ServeSlice>* result) {
  StoreObject& obj = *ptr;
  if (k != 0) {
    *result = absl::OutOfRangeError(absl::StrCat("a whole-object request for ", Name(obj.ns, obj.key), " names part ", k));
  } else if (obj.state == ObjectState::kWriting) {
    *result = absl::FailedPreconditionError(absl::StrCat("object ", Name(obj.ns, obj.key), " is not sealed"));
  } else if (obj.state == ObjectState::kSealed || obj.progress->complete()) {
    ++obj.serve_pins;
    if (obj.in_lru) {
      lru_.erase(obj.lru_pos);
      obj.in_lru = false;
    }
    *result = ServeSlice{ptr, obj.offset, obj.meta.size};
  } else {
    obj.waiters.emplace_back(kWholeWaiter, std::move(ready));
    return false;
  }
  return true;
}

bool ObjectStore::ServeLocked(const std::shared_ptr<StoreObject>& ptr, uint32_t chunk_size, uint32_t k,
                              ChunkReady& ready, absl::StatusOr<ServeSlice>* result) {
  StoreObject& obj = *ptr;
  const std::string& ns = obj.ns;
  const std::string& key = obj.key;
  if (chunk_size == kWholeObject) return ServeWholeLocked(ptr, k, ready, result);
  const uint64_t cs = std::max<uint32_t>(chunk_size, 1);
  const uint64_t num_chunks = (obj.meta.size + cs - 1) / cs;
  const uint64_t first = uint64_t{k} * cs;
  const uint64_t len = std::min<uint64_t>(cs, obj.meta.size - std::min<uint64_t>(obj.meta.size, first));
  if (obj.state == ObjectState::kWriting) {
    *result = absl::FailedPreconditionError(absl::StrCat("object ", Name(ns, key), " is not sealed"));
  } else if (chunk_size < kServeMinChunk && num_chunks > kServeMaxSmallChunks) {
    *result = absl::InvalidArgumentError(absl::StrCat("chunk size ", chunk_size, " for ", Name(ns, key), " of ",
                                                      obj.meta.size, " bytes: the minimum is ", kServeMinChunk,
                                                      " for objects of more than ", kServeMaxSmallChunks, " chunks"));
  } else if (k >= num_chunks) {
    *result = absl::OutOfRangeError(absl::StrCat("chunk ", k, " of ", Name(ns, key), " is past its end (",
                                                 num_chunks, " chunks of ", chunk_size, " bytes)"));
  } else if (obj.state == ObjectState::kSealed) {
    ++obj.serve_pins;
    if (obj.in_lru) {
      lru_.erase(obj.lru_pos);
      obj.in_lru = false;
    }
    *result = ServeSlice{ptr, obj.offset + first, len};
  } else if (chunk_size != obj.progress->chunk_size()) {
    *result = absl::InvalidArgumentError(absl::StrCat(
        "chunk size ", chunk_size, " does not match the partial copy's ", obj.progress->chunk_size()));
  } else if (obj.progress->Has(k)) {
    ++obj.serve_pins;
    *result = ServeSlice{ptr, obj.offset + first, len};
  } else {
    obj.waiters.emplace_back(k, std::move(ready));
    return false;
  }
  return true;
}

bool ObjectStore::ServeChunk(const std::string& ns, const std::string& key, uint32_t chunk_size,
                             uint32_t k, ChunkReady ready, absl::Time absent_until) {
  absl::StatusOr<ServeSlice> result;
  {
    absl::MutexLock lock(&mu_);
    const Key name{ns, key};
    auto it = objects_.find(name);
    if (it != objects_.end()) {
      if (!ServeLocked(it->second, chunk_size, k, ready, &result)) return false;
    } else if (IsTombstonedLocked(name)) {
      result = ObjectDeletedError(ns, key, "on this node");
    } else if (absent_until > absl::Now() && absent_count_ < kMaxAbsentWaiters) {
      absent_[name].push_back(AbsentWaiter{chunk_size, k, absent_until, std::move(ready)});
      ++absent_count_;
      return true;
    } else {
      result = absl::NotFoundError(absl::StrCat("object ", Name(ns, key), " not found on this node"));
    }
  }
  ready(std::move(result));
  return false;
}

absl::Time ObjectStore::ExpireAbsentWaiters(absl::Time now) {
  std::vector<std::pair<Key, ChunkReady>> expired;
  absl::Time next = absl::InfiniteFuture();
  {
    absl::MutexLock lock(&mu_);
    for (auto it = absent_.begin(); it != absent_.end();) {
      std::vector<AbsentWaiter>& held = it->second;
      for (size_t i = 0; i < held.size();) {
        if (held[i].until <= now) {
          expired.emplace_back(it->first, std::move(held[i].ready));
          held[i] = std::move(held.back());
          held.pop_back();
          --absent_count_;
        } else {
          next = std::min(next, held[i].until);
          ++i;
        }
      }
      if (held.empty()) {
        absent_.erase(it++);
      } else {
        ++it;
      }
    }
  }
  for (auto& [name, cb] : expired) {
    cb(absl::NotFoundError(absl::StrCat("object ", Name(name.first, name.second),
                                        " not found on this node (not created while the request waited)")));
  }
  return next;
}

void ObjectStore::UnpinServe(const ServeSlice& slice) {
  if (!slice.object) return;
  absl::MutexLock lock(&mu_);
  StoreObject& obj = *slice.object;
  if (obj.serve_pins > 0) --obj.serve_pins;
  if (obj.serve_pins == 0 && obj.total_pins == 0) {
    if (obj.removed) {
      MaybeFreeLocked(obj);
    } else if (obj.state == ObjectState::kSealed && !obj.in_lru) {
      obj.lru_pos = lru_.insert(lru_.end(), &obj);
      obj.in_lru = true;
    }
  }
}

void ObjectStore::EndSession(SessionId session) {
  absl::MutexLock lock(&mu_);
  std::vector<Key> unsealed;
  std::vector<std::shared_ptr<StoreObject>> pinned;
  for (auto& [k, obj] : objects_) {
    if (obj->state == ObjectState::kWriting && obj->owner == session) unsealed.push_back(k);
    if (obj->pins.contains(session)) pinned.push_back(obj);
  }
  for (auto& obj : zombies_) {
    if (obj->pins.contains(session)) pinned.push_back(obj);
  }
  for (const Key& k : unsealed) RemoveLocked(k, nullptr);
  for (auto& obj : pinned) {
    uint32_t n = obj->pins[session];
    for (uint32_t i = 0; i < n; ++i) UnpinLocked(*obj, session);
  }
  sealed_cv_.SignalAll();
}

StoreStats ObjectStore::Stats() const {
  absl::MutexLock lock(&mu_);
  StoreStats s;
  s.capacity = allocator_.capacity();
  s.used = allocator_.used();
  s.objects = objects_.size();
  for (const auto& [k, obj] : objects_) {
    if (obj->state == ObjectState::kSealed) ++s.sealed;
    if (obj->total_pins > 0) ++s.pinned;
    s.chunk_waiters += obj->waiters.size();
  }
  s.evictions = evictions_;
  s.absent_waiters = absent_count_;
  return s;
}

std::vector<ListedLocal> ObjectStore::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<ListedLocal> out;
  for (const auto& [k, obj] : objects_) {
    out.push_back({obj->ns, obj->key, obj->meta, obj->state, obj->total_pins});
  }
  return out;
}

std::vector<ListedLocal> ObjectStore::ListSealed() const {
  std::vector<ListedLocal> all = List();
  std::erase_if(all, [](const ListedLocal& o) { return o.state != ObjectState::kSealed; });
  return all;
}

}  // namespace ferry::dataplane
