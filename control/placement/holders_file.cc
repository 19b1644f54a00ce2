#include "control/placement/holders_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace ferry::control::placement {
namespace {

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::set<std::string>> HoldersFile::Read() const {
  std::set<std::string> out;
  std::ifstream in(path_);
  if (!in) {
    if (errno == ENOENT) return out;
    return Errno("reading holders file", path_);
  }
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    std::string holder;
    std::string error;
    if (!absl::CUnescape(line, &holder, &error) || holder.empty()) {
      return absl::DataLossError(absl::StrCat("holders file ", path_, " line ", n, ": not an escaped holder (",
                                              error.empty() ? "empty" : error, ")"));
    }
    out.insert(std::move(holder));
  }
  if (in.bad()) return Errno("reading holders file", path_);
  return out;
}

absl::Status HoldersFile::Write(const std::set<std::string>& holders) const {
  std::string text;
  for (const std::string& h : holders) absl::StrAppend(&text, absl::CEscape(h), "\n");
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("creating", tmp);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      absl::Status s = Errno("writing", tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    absl::Status s = Errno("syncing", tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return Errno("renaming onto", path_);
  return absl::OkStatus();
}

}  // namespace ferry::control::placement
