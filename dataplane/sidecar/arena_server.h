// Serves the arena channel ("<socket>.arena", see arena_channel.h): hands each local client
// the arena fd and a session id, answers the client's local requests on that connection
// (shm/local_channel.h), and ends the session when the connection closes.
//
// Threading: one thread accepts and watches connections (poll) and runs the local-request
// handler, which must not block (it answers kFallback for anything that would wait); Stop()
// joins it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "shm/local_channel.h"

namespace ferry::dataplane {

class ArenaServer {
 public:
  using SessionEnded = std::function<void(uint64_t session)>;
  using LocalHandler = std::function<shm::LocalReply(uint64_t session, const shm::LocalRequest& request)>;

  // Binds "<socket_path>.arena" (mode 0660). The caller holds the socket lock, so a stale
  // file there is removed first.
  static absl::StatusOr<std::unique_ptr<ArenaServer>> Start(const std::string& socket_path, int arena_fd,
                                                            uint64_t arena_size, uint64_t node_id,
                                                            SessionEnded on_end,
                                                            LocalHandler local = nullptr);
  ~ArenaServer();
  void Stop();

  bool IsLive(uint64_t session) const;
  size_t live_sessions() const;

 private:
  struct Conn {
    uint64_t session = 0;
    std::string in;   // bytes of requests not yet complete
  };
  ArenaServer() = default;
  void Loop();
  // Reads what `fd` has, answers each complete request; false when the connection must close
  // (the client went away, or broke the frame format).
  bool Serve(int fd, Conn& conn);

  int listen_fd_ = -1;
  int wake_fd_ = -1;
  int arena_fd_ = -1;
  uint64_t arena_size_ = 0;
  uint64_t node_id_ = 0;
  std::string path_;
  SessionEnded on_end_;
  LocalHandler local_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  std::set<uint64_t> live_ ABSL_GUARDED_BY(mu_);
  uint64_t next_session_ ABSL_GUARDED_BY(mu_) = 1;
};

// Takes an exclusive lock on "<socket_path>.lock". FAILED_PRECONDITION naming the path if
// another ferryd holds it. Returns the lock fd (kept open for the process lifetime).
absl::StatusOr<int> LockSocketPath(const std::string& socket_path);

}  // namespace ferry::dataplane
