// The host arena: one memfd mapping that holds every object of a node. Created, populated
// (so no page fault sits on the transfer path) and registered once at start-up. Clients
// receive the fd and map it too, which makes Create/Seal and local Get zero-copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace ferry::shm {

class Arena {
 public:
  // Creates a memfd of `size` bytes named `name` and maps it shared, read-write. With
  // `prefault`, every page is touched now (MAP_POPULATE). RESOURCE_EXHAUSTED / INTERNAL
  // with strerror on failure.
  static absl::StatusOr<std::unique_ptr<Arena>> Create(const std::string& name, size_t size,
                                                       bool prefault);
  // Maps an arena fd received from ferryd (client side). Takes ownership of `fd`.
  static absl::StatusOr<std::unique_ptr<Arena>> Map(int fd, size_t size);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  uint8_t* base() const { return base_; }
  size_t size() const { return size_; }
  int fd() const { return fd_; }
  // True if [offset, offset+len) lies inside the arena (overflow-safe).
  bool Contains(uint64_t offset, uint64_t len) const {
    return offset <= size_ && len <= size_ - offset;
  }

 private:
  Arena(int fd, uint8_t* base, size_t size) : fd_(fd), base_(base), size_(size) {}
  int fd_;
  uint8_t* base_;
  size_t size_;
};

}  // namespace ferry::shm
