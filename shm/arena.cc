#include "shm/arena.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace ferry::shm {
namespace {

absl::Status Errno(const std::string& what) {
  int e = errno;
  std::string msg = absl::StrCat(what, ": ", strerror(e));
  if (e == ENOMEM || e == ENOSPC) return absl::ResourceExhaustedError(msg);
  return absl::InternalError(msg);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Arena>> Arena::Create(const std::string& name, size_t size,
                                                     bool prefault) {
  if (size == 0) return absl::InvalidArgumentError("arena size must be > 0");
  int fd = memfd_create(name.c_str(), MFD_CLOEXEC);
  if (fd < 0) return Errno(absl::StrCat("memfd_create(", name, ")"));
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
    absl::Status s = Errno(absl::StrCat("ftruncate arena to ", size, " bytes"));
    close(fd);
    return s;
  }
  int flags = MAP_SHARED | (prefault ? MAP_POPULATE : 0);
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (base == MAP_FAILED) {
    absl::Status s = Errno(absl::StrCat("mmap arena of ", size, " bytes"));
    close(fd);
    return s;
  }
  return std::unique_ptr<Arena>(new Arena(fd, static_cast<uint8_t*>(base), size));
}

absl::StatusOr<std::unique_ptr<Arena>> Arena::Map(int fd, size_t size) {
  void* base = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    absl::Status s = Errno(absl::StrCat("mmap received arena fd of ", size, " bytes"));
    close(fd);
    return s;
  }
  return std::unique_ptr<Arena>(new Arena(fd, static_cast<uint8_t*>(base), size));
}

Arena::~Arena() {
  munmap(base_, size_);
  close(fd_);
}

}  // namespace ferry::shm
