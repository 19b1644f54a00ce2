// `ferry`: the command line of a ferry cluster. Talks to the local ferryd through libferry.
//
//   ferry status                         this node and the cluster
//   ferry put FILE KEY [--dtype f32]     store a file ('-' = stdin) as an object
//   ferry get KEY FILE [--timeout 30s]   fetch an object into a file ('-' = stdout)
//   ferry ls [PREFIX]                    list objects
//   ferry rm KEY [KEY...]                delete objects everywhere (several: one batch)
//   ferry bcast KEY [--nodes a,b]        copy an object to nodes
//   ferry bcast KEY KEY... [--nodes a,b] copy a batch of objects as one operation
//   ferry resources | acquire | release | leases   placement (sdk/placement_cli.h; --coord)
//
// Exit status (kExit* below, docs/operations.md): 0 success; 1 the operation failed (the
// cluster answered with an error, or writing the output failed); 2 usage or invalid input
// (flags, namespace, key, --nodes, an unreadable input or uncreatable output path); 3 ferryd
// could not be reached. Errors are one "ferry: <message>" line on stderr.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "core/names.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "ferry/client.h"
#include "sdk/cli_util.h"
#include "sdk/placement_cli.h"
#include "sdk/group_cli.h"
#include "sdk/reduce_cli.h"

namespace ferry::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kDefaultSocket = "/run/ferry/ferryd.sock";
// Piece size for streaming a file into an object and an object into a file.
constexpr size_t kPiece = 16 << 20;

enum ExitCode : int { kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3 };

// Where an error's exit code is not implied by its status code, it travels as this payload.
constexpr absl::string_view kExitPayload = "ferry.cli/exit-code";

absl::Status WithExit(absl::Status s, ExitCode code) {
  if (!s.ok()) s.SetPayload(kExitPayload, absl::Cord(absl::StrCat(static_cast<int>(code))));
  return s;
}

// INVALID_ARGUMENT (from the CLI, the SDK or ferryd) is invalid input; everything else
// that is not marked otherwise is a failed operation.
int ExitCodeOf(const absl::Status& s) {
  if (s.ok()) return kExitOk;
  if (auto p = s.GetPayload(kExitPayload)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*p), &code)) return code;
  }
  return s.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
}

// Every verb has its own flags, so one verb's default never leaks into another's.
struct GlobalFlags {
  std::string socket = kDefaultSocket;
  std::string ns = std::string(kDefaultNamespace);
  bool json = false;
};
struct PutFlags {
  std::string file;
  std::string key;
  std::string dtype = "bytes";
};
struct GetFlags {
  std::string key;
  std::string file;
  std::string timeout = "30s";
};
struct LsFlags {
  std::string prefix;
  uint32_t limit = 0;
};
struct RmFlags {
  std::string key;
  std::vector<std::string> more_keys;   // further keys: one batch delete
};
struct BcastFlags {
  std::string key;
  std::vector<std::string> more_keys;   // further keys: a batch broadcast
  std::vector<std::string> nodes;  // as given: each may be "a,b,c"
  bool nodes_given = false;
  std::string timeout = "60s";
};

double SecondsSince(absl::Time start) { return absl::ToDoubleSeconds(absl::Now() - start); }

ObjectName NameOf(const GlobalFlags& g, const std::string& key) { return ObjectName{g.ns, key}; }
std::string Printable(const GlobalFlags& g, const std::string& key) {
  return PrintableName(g.ns, key);
}

absl::Status FileError(absl::string_view what, const std::string& path, int err) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " '", path, "'"));
}

// A failure to connect is "ferryd could not be reached" (exit 3).
absl::StatusOr<std::unique_ptr<Client>> ConnectTo(const GlobalFlags& g) {
  ConnectOptions options;
  options.ns = g.ns;
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(g.socket, options);
  if (!client.ok() && client.status().code() != absl::StatusCode::kInvalidArgument) {
    return WithExit(client.status(), kExitUnreachable);
  }
  return client;
}

// Owns a file descriptor; stdin/stdout are borrowed, never closed.
class File {
 public:
  explicit File(int fd) : fd_(fd) {}
  ~File() {
    if (fd_ > STDERR_FILENO) close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly `len` bytes into `out`; a short file is an error.
absl::Status ReadExactly(int fd, uint8_t* out, uint64_t len, const std::string& path,
                         uint64_t done_before, uint64_t total) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, out + done, std::min<uint64_t>(len - done, kPiece));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError("reading", path, errno);
    if (n == 0) {
      return absl::AbortedError(absl::StrCat("'", path, "' shrank while being read: got ",
                                             done_before + done, " of ", total, " bytes"));
    }
    done += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> ReadAll(int fd, const std::string& path) {
  std::vector<uint8_t> data;
  size_t used = 0;
  while (true) {
    if (data.size() - used < kPiece) data.resize(used + kPiece);
    ssize_t n = read(fd, data.data() + used, data.size() - used);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError("reading", path, errno);
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  data.resize(used);
  return data;
}

absl::Status WriteAll(int fd, const uint8_t* data, uint64_t len, const std::string& path) {
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = write(fd, data + done, std::min<uint64_t>(len - done, kPiece));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return FileError("writing", path, errno);
    done += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

// ---- status ---------------------------------------------------------------------------

json NodeJson(const NodeInfo& node) {
  return json{{"id", node.id},
              {"name", node.name},
              {"alive", node.alive},
              {"arena_bytes", node.arena_bytes},
              {"arena_used", node.arena_used},
              {"objects", node.objects},
              {"bandwidth_bps", node.bandwidth_bps},
              {"latency_s", node.latency_s},
              {"labels", node.labels}};
}

std::vector<std::string> NodeRow(const NodeInfo& node, bool self) {
  return {self ? "*" : "",
          node.name.empty() ? "-" : node.name,
          absl::StrCat(node.id),
          node.alive ? "yes" : "NO",
          absl::StrCat(HumanBytes(static_cast<double>(node.arena_used)), " / ",
                       HumanBytes(static_cast<double>(node.arena_bytes))),
          absl::StrCat(node.objects),
          FormatBandwidth(node.bandwidth_bps),
          FormatLatency(node.latency_s)};
}

void PrintStatus(const GlobalFlags& g, const NodeStatus& st) {
  const NodeInfo& self = st.self;
  std::cout << "node         " << (self.name.empty() ? "(unnamed)" : self.name) << " (id "
            << self.id << ") at " << g.socket << "\n"
            << "coordinator  " << (st.coordinator_connected ? "connected" : "NOT CONNECTED") << "\n"
            << "arena        " << HumanBytes(static_cast<double>(self.arena_used)) << " used of "
            << HumanBytes(static_cast<double>(self.arena_bytes)) << ", "
            << Plural(self.objects, "object") << ", " << st.pinned << " pinned, "
            << Plural(st.evictions, "eviction") << "\n"
            << "traffic      " << HumanBytes(static_cast<double>(st.bytes_received))
            << " received, " << HumanBytes(static_cast<double>(st.bytes_sent)) << " sent, "
            << Plural(st.retries, "retry", "retries") << ", "
            << Plural(st.failures, "failure") << "\n\n";
  std::vector<std::vector<std::string>> rows;
  bool self_listed = false;
  for (const NodeInfo& node : st.cluster) {
    // This node's own figures are fresher than the coordinator's copy of its heartbeat.
    const bool is_self = node.id == self.id;
    self_listed |= is_self;
    rows.push_back(is_self ? NodeRow(self, true) : NodeRow(node, false));
  }
  if (!self_listed) rows.insert(rows.begin(), NodeRow(self, true));
  std::cout << FormatTable(
                   {"", "NODE", "ID", "ALIVE", "ARENA USED", "OBJECTS", "BANDWIDTH", "LATENCY"},
                   rows)
            << Plural(rows.size(), "node") << ", "
            << std::count_if(rows.begin(), rows.end(), [](const auto& r) { return r[3] == "yes"; })
            << " alive\n";
}

absl::Status RunStatus(const GlobalFlags& g) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(g));
  FERRY_ASSIGN_OR_RETURN(NodeStatus st, client->Status());
  if (!g.json) {
    PrintStatus(g, st);
    return absl::OkStatus();
  }
  json out{{"socket", g.socket},
           {"self", NodeJson(st.self)},
           {"coordinator_connected", st.coordinator_connected},
           {"pinned", st.pinned},
           {"evictions", st.evictions},
           {"bytes_received", st.bytes_received},
           {"bytes_sent", st.bytes_sent},
           {"retries", st.retries},
           {"failures", st.failures},
           {"cluster", json::array()}};
  for (const NodeInfo& node : st.cluster) out["cluster"].push_back(NodeJson(node));
  std::cout << DumpJson(out) << "\n";
  return absl::OkStatus();
}

// ---- put ------------------------------------------------------------------------------

// Streams a regular file of `size` bytes straight into the mapped object, piece by piece.
absl::Status PutRegularFile(Client& client, const GlobalFlags& g, const PutFlags& p, DType dtype,
                            int fd, uint64_t size) {
  ObjectMeta meta;
  meta.size = size;
  meta.dtype = dtype;
  FERRY_ASSIGN_OR_RETURN(WritableObject object, client.Create(NameOf(g, p.key), meta));
  // Any early return below destroys `object`, which aborts it.
  for (uint64_t done = 0; done < size;) {
    const uint64_t len = std::min<uint64_t>(size - done, kPiece);
    FERRY_RETURN_IF_ERROR(ReadExactly(fd, object.data() + done, len, p.file, done, size));
    done += len;
  }
  return object.Seal();
}

absl::StatusOr<uint64_t> PutInput(Client& client, const GlobalFlags& g, const PutFlags& p,
                                  DType dtype, File& file) {
  struct stat st = {};
  if (fstat(file.fd(), &st) != 0) return FileError("stat of", p.file, errno);
  if (S_ISREG(st.st_mode)) {
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    FERRY_RETURN_IF_ERROR(PutRegularFile(client, g, p, dtype, file.fd(), size));
    return size;
  }
  // A pipe, terminal or device: the size is unknown until EOF, so read it all first.
  FERRY_ASSIGN_OR_RETURN(std::vector<uint8_t> data,
                         ReadAll(file.fd(), p.file == "-" ? "<stdin>" : p.file));
  FERRY_RETURN_IF_ERROR(client.Put(NameOf(g, p.key), data, dtype));
  return data.size();
}

// The input file, opened before ferryd is contacted: a missing or unreadable one is
// invalid input (exit 2).
absl::StatusOr<std::unique_ptr<File>> OpenInput(const std::string& path) {
  if (path == "-") return std::make_unique<File>(STDIN_FILENO);
  auto file = std::make_unique<File>(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file->fd() < 0) return WithExit(FileError("opening", path, errno), kExitUsage);
  struct stat st = {};
  if (fstat(file->fd(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is a directory"));
  }
  return file;
}

absl::Status RunPut(const GlobalFlags& g, const PutFlags& p) {
  const std::optional<DType> dtype = DTypeFromName(p.dtype);
  if (!dtype) return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", p.dtype, "'"));
  FERRY_RETURN_IF_ERROR(ValidateKey(p.key));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<File> input, OpenInput(p.file));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(g));
  const absl::Time start = absl::Now();
  FERRY_ASSIGN_OR_RETURN(uint64_t bytes, PutInput(*client, g, p, *dtype, *input));
  const double seconds = SecondsSince(start);
  if (g.json) {
    std::cout << DumpJson(json{{"ns", g.ns},
                               {"key", EscapeKey(p.key)},
                               {"bytes", bytes},
                               {"dtype", DTypeName(*dtype)},
                               {"seconds", seconds},
                               {"bytes_per_second", seconds > 0 ? bytes / seconds : 0.0}})
              << "\n";
  } else {
    std::cout << "put " << Printable(g, p.key) << ": " << HumanBytes(static_cast<double>(bytes))
              << " (" << Plural(bytes, "byte") << ", " << DTypeName(*dtype) << ") in "
              << FormatTransfer(static_cast<double>(bytes), seconds) << "\n";
  }
  return absl::OkStatus();
}

// ---- get ------------------------------------------------------------------------------

// Where `ferry get` writes. A regular file (or a path that does not exist yet) is written to
// a temporary file in the same directory, fsync'ed and renamed over the target on Commit, so
// a failed get leaves the old file intact; a device, fifo or "-" (stdout) is written in
// place. The only thing ever unlinked is that temporary file, which ferry created.
class Output {
 public:
  static absl::StatusOr<std::unique_ptr<Output>> Open(const std::string& path) {
    if (path == "-") return std::unique_ptr<Output>(new Output("<stdout>", STDOUT_FILENO, "", ""));
    struct stat st = {};
    const bool exists = stat(path.c_str(), &st) == 0;
    if (!exists && errno != ENOENT) return WithExit(FileError("stat of", path, errno), kExitUsage);
    if (exists && S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat("'", path, "' is a directory"));
    }
    if (exists && !S_ISREG(st.st_mode)) {
      const int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return WithExit(FileError("opening", path, errno), kExitUsage);
      return std::unique_ptr<Output>(new Output(path, fd, "", ""));
    }
    // Through a symlink, replace the file it points to, not the link.
    std::string target = path;
    if (exists) {
      char* real = realpath(path.c_str(), nullptr);
      if (real == nullptr) return WithExit(FileError("resolving", path, errno), kExitUsage);
      target = real;
      free(real);
    }
    const size_t slash = target.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : target.substr(0, slash + 1);
    const std::string base = slash == std::string::npos ? target : target.substr(slash + 1);
    std::string tmp = absl::StrCat(dir == "." ? "" : dir, ".", base, ".ferry-XXXXXX");
    const int fd = mkostemp(tmp.data(), O_CLOEXEC);
    if (fd < 0) return WithExit(FileError("creating a temporary file for", path, errno), kExitUsage);
    std::unique_ptr<Output> out(new Output(path, fd, tmp, target));
    // mkostemp makes it 0600: give it the old file's mode, or what a new file would get.
    mode_t mode = st.st_mode & 07777;
    if (!exists) {
      const mode_t mask = umask(0);
      umask(mask);
      mode = 0666 & ~mask;
    }
    if (fchmod(fd, mode) != 0) return FileError("setting the mode of", tmp, errno);
    return out;
  }

  ~Output() {
    if (fd_ > STDERR_FILENO) close(fd_);
    if (!tmp_.empty()) unlink(tmp_.c_str());  // not committed: drop our temporary file
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  int fd() const { return fd_; }
  const std::string& name() const { return name_; }

  // Makes the written bytes the target's content: fsync + close + rename for a temporary
  // file, close for a file written in place. Reports delayed write errors (NFS, quota).
  absl::Status Commit() {
    const int fd = std::exchange(fd_, -1);
    if (tmp_.empty()) {
      if (fd > STDERR_FILENO && close(fd) != 0) return FileError("closing", name_, errno);
      return absl::OkStatus();
    }
    if (fsync(fd) != 0) {
      const int err = errno;
      close(fd);
      return FileError("syncing", tmp_, err);
    }
    if (close(fd) != 0) return FileError("closing", tmp_, errno);
    if (rename(tmp_.c_str(), target_.c_str()) != 0) {
      return FileError(absl::StrCat("renaming '", tmp_, "' to"), target_, errno);
    }
    tmp_.clear();
    return absl::OkStatus();
  }

 private:
  Output(std::string name, int fd, std::string tmp, std::string target)
      : name_(std::move(name)), fd_(fd), tmp_(std::move(tmp)), target_(std::move(target)) {}

  std::string name_;    // as the user wrote it, for messages
  int fd_;
  std::string tmp_;     // our temporary file until Commit; empty when writing in place
  std::string target_;  // what tmp_ is renamed to
};

// "local", "the coordinator (inline)" for a small object that came inline (no sender node),
// or "node NAME (ID)" for a pulled object; the name lookup is best effort.
std::string SourceOf(Client& client, const GetInfo& info) {
  if (!info.pulled) return "local";
  if (info.source_node == 0) return "the coordinator (inline)";
  absl::StatusOr<NodeStatus> st = client.Status();
  if (st.ok()) {
    for (const NodeInfo& node : st->cluster) {
      if (node.id == info.source_node && !node.name.empty()) {
        return absl::StrCat("node ", node.name, " (", info.source_node, ")");
      }
    }
  }
  return absl::StrCat("node ", info.source_node);
}

// A Get that ran out of time: if the key exists nowhere, say so (a deadline message for a
// key that was never created, and with --timeout 0 above all, misleads).
absl::Status ExplainDeadline(Client& client, const GlobalFlags& g, const GetFlags& f,
                             absl::Duration timeout, absl::Status why) {
  if (why.code() != absl::StatusCode::kDeadlineExceeded) return why;
  absl::StatusOr<std::vector<ObjectInfo>> listed = client.List(g.ns, f.key, 0);
  if (!listed.ok()) return why;
  for (const ObjectInfo& o : *listed) {
    if (o.name.key == f.key) return why;
  }
  return absl::NotFoundError(absl::StrCat(
      "object ", Printable(g, f.key), " does not exist",
      timeout > absl::ZeroDuration()
          ? absl::StrCat(" (waited ", absl::FormatDuration(timeout), " for it to be created)")
          : ""));
}

absl::Status RunGet(const GlobalFlags& g, const GetFlags& f) {
  FERRY_ASSIGN_OR_RETURN(absl::Duration timeout, ParseDurationArg(f.timeout));
  FERRY_RETURN_IF_ERROR(ValidateKey(f.key));
  // Before the Get: a path that cannot be written is found before any byte moves.
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Output> out, Output::Open(f.file));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(g));
  const absl::Time start = absl::Now();
  absl::StatusOr<ObjectView> view = client->Get(NameOf(g, f.key), timeout);
  if (!view.ok()) return ExplainDeadline(*client, g, f, timeout, view.status());
  const double get_seconds = SecondsSince(start);
  const absl::Time write_start = absl::Now();
  FERRY_RETURN_IF_ERROR(WriteAll(out->fd(), view->data(), view->size(), out->name()));
  FERRY_RETURN_IF_ERROR(out->Commit());
  const double write_seconds = SecondsSince(write_start);
  const GetInfo info = view->info();
  const uint64_t bytes = view->size();
  const DType dtype = view->meta().dtype;
  FERRY_RETURN_IF_ERROR(view->Release());
  const std::string source = SourceOf(*client, info);
  // Data may be going to stdout, so the report goes to stderr unless --json asks for it.
  std::ostream& report = g.json && f.file != "-" ? std::cout : std::cerr;
  if (g.json) {
    report << DumpJson(json{{"ns", g.ns},
                            {"key", EscapeKey(f.key)},
                            {"bytes", bytes},
                            {"dtype", DTypeName(dtype)},
                            {"pulled", info.pulled},
                            {"source_node", info.source_node},
                            {"source", source},
                            {"pull_seconds", info.seconds},
                            {"get_seconds", get_seconds},
                            {"write_seconds", write_seconds},
                            {"timeout_seconds", absl::ToDoubleSeconds(timeout)}})
           << "\n";
    return absl::OkStatus();
  }
  // ferryd reports one time for a pull, which includes waiting for the key and a sender, so
  // it is "in", not a transfer rate.
  report << "got " << Printable(g, f.key) << ": " << HumanBytes(static_cast<double>(bytes)) << " ("
         << Plural(bytes, "byte") << ", " << DTypeName(dtype) << ") from " << source;
  if (info.pulled) report << " in " << FormatSeconds(info.seconds);
  report << "; get took " << FormatSeconds(get_seconds) << ", writing " << out->name() << " "
         << FormatTransfer(static_cast<double>(bytes), write_seconds) << "\n";
  return absl::OkStatus();
}

// ---- ls / rm --------------------------------------------------------------------------

absl::Status RunLs(const GlobalFlags& g, const LsFlags& l) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(g));
  FERRY_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects, client->List(g.ns, l.prefix, l.limit));
  if (g.json) {
    json out = json::array();
    for (const ObjectInfo& o : objects) {
      out.push_back(json{{"ns", o.name.ns},
                         {"key", EscapeKey(o.name.key)},
                         {"size", o.meta.size},
                         {"dtype", DTypeName(o.meta.dtype)},
                         {"count", o.meta.count},
                         {"complete_copies", o.complete_copies},
                         {"partial_copies", o.partial_copies}});
    }
    std::cout << DumpJson(out) << "\n";
    return absl::OkStatus();
  }
  std::vector<std::vector<std::string>> rows;
  double total = 0;
  for (const ObjectInfo& o : objects) {
    rows.push_back({PrintableKey(o.name.key), HumanBytes(static_cast<double>(o.meta.size)),
                    DTypeName(o.meta.dtype), absl::StrCat(o.complete_copies),
                    absl::StrCat(o.partial_copies)});
    total += static_cast<double>(o.meta.size);
  }
  std::cout << FormatTable({"KEY", "SIZE", "DTYPE", "COMPLETE", "PARTIAL"}, rows)
            << Plural(objects.size(), "object") << " in namespace " << g.ns << ", "
            << HumanBytes(total) << "\n";
  return absl::OkStatus();
}

// Several keys: one DeleteBatch; a line per key.
absl::Status RunRmBatch(const GlobalFlags& g, const RmFlags& r) {
  std::vector<std::string> keys = {r.key};
  keys.insert(keys.end(), r.more_keys.begin(), r.more_keys.end());
  std::vector<ObjectName> names;
  for (const std::string& k : keys) {
    FERRY_RETURN_IF_ERROR(ValidateKey(k));
    names.push_back(NameOf(g, k));
  }
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(g));
  FERRY_ASSIGN_OR_RETURN(std::vector<absl::Status> outcomes, client->DeleteBatch(names));
  size_t failed = 0;
  json entries = json::array();
  for (size_t i = 0; i < keys.size(); ++i) {
    const absl::Status& s = outcomes[i];
    failed += s.ok() ? 0 : 1;
    if (g.json) {
      entries.push_back(json{{"key", EscapeKey(keys[i])},
                             {"deleted", s.ok()},
                             {"code", absl::StatusCodeToString(s.code())},
                             {"error", std::string(s.message())}});
    } else if (s.ok()) {
      std::cout << "deleted " << Printable(g, keys[i]) << "\n";
    } else {
      std::cout << Printable(g, keys[i]) << ": " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
    }
  }
  if (g.json) std::cout << DumpJson(json{{"ns", g.ns}, {"objects", entries}}) << "\n";
  if (failed > 0) {
    return absl::AbortedError(absl::StrCat(failed, " of ", keys.size(), " objects were not deleted"));
  }
  return absl::OkStatus();
}

absl::Status RunRm(const GlobalFlags& g, const RmFlags& r) {
  if (!r.more_keys.empty()) return RunRmBatch(g, r);
  FERRY_RETURN_IF_ERROR(ValidateKey(r.key));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(g));
  FERRY_RETURN_IF_ERROR(client->Delete(NameOf(g, r.key)));
  if (g.json) {
    std::cout << DumpJson(json{{"ns", g.ns}, {"key", EscapeKey(r.key)}, {"deleted", true}})
              << "\n";
  } else {
    std::cout << "deleted " << Printable(g, r.key) << "\n";
  }
  return absl::OkStatus();
}

// ---- bcast ----------------------------------------------------------------------------

// --nodes as given ("a,b" "c") -> {"a", "b", "c"}. Given but empty ("", ",", "a,,b") is
// invalid input, not "every node".
absl::StatusOr<std::vector<std::string>> TargetNodes(const BcastFlags& b) {
  std::vector<std::string> out;
  if (!b.nodes_given) return out;
  for (const std::string& arg : b.nodes) {
    for (absl::string_view name : absl::StrSplit(arg, ',')) {
      if (name.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--nodes '", arg, "' has an empty node name (write names or ids, comma-separated)"));
      }
      if (absl::Status s = ValidateNodeName(name); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("--nodes: ", s.message()));
      }
      out.emplace_back(name);
    }
  }
  return out;
}

// Several keys: one BroadcastBatch; a table per target, then one line per failed entry.
absl::Status RunBcastBatch(const GlobalFlags& g, const BcastFlags& b, absl::Duration timeout,
                           const std::vector<std::string>& nodes) {
  std::vector<std::string> keys = {b.key};
  keys.insert(keys.end(), b.more_keys.begin(), b.more_keys.end());
  std::vector<ObjectName> names;
  for (const std::string& k : keys) names.push_back(NameOf(g, k));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(g));
  FERRY_ASSIGN_OR_RETURN(BatchBroadcastResult result, client->BroadcastBatch(names, nodes, timeout));
  std::vector<std::vector<std::string>> rows;
  json targets = json::array(), errors = json::array();
  size_t failed = 0;
  for (const BroadcastResult::Target& t : result.targets) {
    failed += t.ok ? 0 : 1;
    rows.push_back({t.node, t.ok ? "ok" : "FAILED", t.error});
    targets.push_back(json{{"node", t.node}, {"ok", t.ok}, {"error", t.error}});
  }
  for (const BatchBroadcastResult::EntryError& e : result.errors) {
    errors.push_back(json{{"key", EscapeKey(keys[e.index])},
                          {"node", e.node},
                          {"code", absl::StatusCodeToString(e.code)},
                          {"error", e.error}});
  }
  if (g.json) {
    std::cout << DumpJson(json{{"ns", g.ns}, {"objects", keys.size()}, {"bytes", result.bytes},
                               {"seconds", result.seconds}, {"targets", targets}, {"errors", errors}})
              << "\n";
  } else {
    std::cout << FormatTable({"NODE", "RESULT", "ERROR"}, rows);
    for (const BatchBroadcastResult::EntryError& e : result.errors) {
      std::cout << Printable(g, keys[e.index]) << " on " << (e.node.empty() ? "every node" : e.node) << ": "
                << absl::StatusCodeToString(e.code) << ": " << e.error << "\n";
    }
    std::cout << "broadcast " << Plural(keys.size(), "object") << " (" << HumanBytes(static_cast<double>(result.bytes))
              << ") to " << Plural(result.targets.size(), "node") << ": " << result.targets.size() - failed << " ok, "
              << failed << " failed in " << FormatSeconds(result.seconds) << "\n";
  }
  if (!result.ok()) {
    return absl::AbortedError(absl::StrCat("batch broadcast of ", keys.size(), " objects failed on ", failed,
                                           " of ", result.targets.size(), " nodes (", result.errors.size(),
                                           " entry errors)"));
  }
  return absl::OkStatus();
}

absl::Status RunBcast(const GlobalFlags& g, const BcastFlags& b) {
  FERRY_ASSIGN_OR_RETURN(absl::Duration timeout, ParseDurationArg(b.timeout));
  if (!b.more_keys.empty()) {
    FERRY_ASSIGN_OR_RETURN(std::vector<std::string> nodes, TargetNodes(b));
    return RunBcastBatch(g, b, timeout, nodes);
  }
  FERRY_RETURN_IF_ERROR(ValidateKey(b.key));
  FERRY_ASSIGN_OR_RETURN(std::vector<std::string> nodes, TargetNodes(b));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(g));
  FERRY_ASSIGN_OR_RETURN(BroadcastResult result,
                         client->Broadcast(NameOf(g, b.key), nodes, timeout));
  size_t failed = 0;
  std::vector<std::vector<std::string>> rows;
  json targets = json::array();
  for (const BroadcastResult::Target& t : result.targets) {
    failed += t.ok ? 0 : 1;
    rows.push_back({t.node, t.ok ? "ok" : "FAILED", t.error});
    targets.push_back(json{{"node", t.node}, {"ok", t.ok}, {"error", t.error}});
  }
  if (g.json) {
    std::cout << DumpJson(json{{"ns", g.ns},
                               {"key", EscapeKey(b.key)},
                               {"seconds", result.seconds},
                               {"targets", targets}})
              << "\n";
  } else {
    std::cout << FormatTable({"NODE", "RESULT", "ERROR"}, rows) << "broadcast "
              << Printable(g, b.key) << " to " << Plural(result.targets.size(), "node") << ": "
              << result.targets.size() - failed << " ok, " << failed << " failed in "
              << FormatSeconds(result.seconds) << "\n";
  }
  if (failed > 0) {
    return absl::AbortedError(absl::StrCat("broadcast of ", Printable(g, b.key), " failed on ",
                                           failed, " of ", Plural(result.targets.size(), "node")));
  }
  return absl::OkStatus();
}

// ---- command line ---------------------------------------------------------------------

CLI::Validator DurationValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        absl::StatusOr<absl::Duration> d = ParseDurationArg(text);
        return d.ok() ? std::string() : std::string(d.status().message());
      },
      "DURATION");
}

CLI::Validator DTypeValidator() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        return DTypeFromName(text) ? std::string()
                                   : absl::StrCat("unknown dtype '", text,
                                                  "' (bytes, f32, f64, f16, bf16, i32, i64, u8)");
      },
      "DTYPE");
}

struct Flags {
  GlobalFlags global;
  PutFlags put;
  GetFlags get;
  LsFlags ls;
  RmFlags rm;
  BcastFlags bcast;
  PlacementFlags placement;
  ReduceFlags reduce;
  GroupFlags group;
};

void AddGlobalOptions(CLI::App& app, GlobalFlags& g) {
  app.add_option("--socket", g.socket, "ferryd's unix socket")
      ->envname("FERRY_SOCKET")
      ->capture_default_str();
  app.add_option("--ns", g.ns, "object namespace")->capture_default_str();
  app.add_flag("--json", g.json,
               "machine-readable output (keys escaped as \\xNN where not printable)");
}

void AddObjectCommands(CLI::App& app, Flags& f) {
  CLI::App* put =
      app.add_subcommand("put", "store FILE as object KEY (streams it into ferryd's arena)");
  put->add_option("FILE", f.put.file, "file to read; '-' reads stdin")->required();
  put->add_option("KEY", f.put.key, "object key")->required();
  put->add_option("--dtype", f.put.dtype, "element type: bytes, f32, f64, f16, bf16, i32, i64, u8")
      ->check(DTypeValidator())
      ->capture_default_str();

  CLI::App* get = app.add_subcommand("get", "fetch object KEY (from any node) into FILE");
  get->add_option("KEY", f.get.key, "object key")->required();
  get->add_option("FILE", f.get.file,
                  "file to write (replaced only when the get succeeds); '-' writes stdout")
      ->required();
  get->add_option("--timeout", f.get.timeout, "how long to wait for KEY to exist (30s, 500ms, 2m)")
      ->check(DurationValidator())
      ->capture_default_str();

  CLI::App* ls = app.add_subcommand("ls", "list objects in the namespace");
  ls->add_option("PREFIX", f.ls.prefix, "only keys starting with PREFIX");
  ls->add_option("--limit", f.ls.limit, "at most this many objects (0: all)")
      ->capture_default_str();

  CLI::App* rm = app.add_subcommand("rm", "delete object KEY on every node");
  rm->add_option("KEY", f.rm.key, "object key")->required();
  rm->add_option("MORE_KEYS", f.rm.more_keys, "further keys: the objects are deleted as one batch");

  CLI::App* bcast = app.add_subcommand("bcast", "make nodes hold a complete copy of KEY");
  bcast->add_option("KEY", f.bcast.key, "object key")->required();
  bcast->add_option("MORE_KEYS", f.bcast.more_keys, "further keys: the objects are broadcast as one batch");
  bcast->add_option("--nodes", f.bcast.nodes,
                    "node names or ids, comma-separated (default: every live node)");
  bcast->add_option("--timeout", f.bcast.timeout, "give up after this long (30s, 500ms, 2m)")
      ->check(DurationValidator())
      ->capture_default_str();
}

absl::Status Dispatch(const CLI::App& app, const Flags& f) {
  if (app.got_subcommand("status")) return RunStatus(f.global);
  if (app.got_subcommand("put")) return RunPut(f.global, f.put);
  if (app.got_subcommand("get")) return RunGet(f.global, f.get);
  if (app.got_subcommand("ls")) return RunLs(f.global, f.ls);
  if (app.got_subcommand("rm")) return RunRm(f.global, f.rm);
  if (app.got_subcommand("bcast")) return RunBcast(f.global, f.bcast);
  if (IsReduceCommand(app)) {
    return RunReduceCommand(app, f.reduce, f.global.ns, f.global.json, [&f] { return ConnectTo(f.global); });
  }
  if (IsGroupCommand(app)) {
    return RunGroupCommand(app, f.group, f.global.ns, f.global.json, [&f] { return ConnectTo(f.global); });
  }
  if (IsPlacementCommand(app)) {
    return RunPlacementCommand(app, f.placement, f.global.json,
                               [](absl::Status s) { return WithExit(std::move(s), kExitUnreachable); });
  }
  return absl::InvalidArgumentError("no command given");
}

int Main(int argc, char** argv) {
  Flags f;
  CLI::App app("ferry: inspect a ferry cluster and move objects through it", "ferry");
  app.fallthrough();  // global options may follow the subcommand
  app.footer(
      "Durations: 30s, 500ms, 2m (a bare number is seconds). FERRY_SOCKET sets the default "
      "--socket.\nExit status: 0 success; 1 the operation failed (the cluster answered with an "
      "error, or writing FILE failed); 2 usage or invalid input (flags, namespace, key, --nodes, "
      "FILE); 3 ferryd could not be reached (for the placement verbs: ferry-coord).");
  app.require_subcommand(1);
  AddGlobalOptions(app, f.global);
  app.add_subcommand("status", "this node and the cluster: nodes, arenas, links, coordinator");
  AddObjectCommands(app, f);
  AddReduceCommands(app, f.reduce);
  AddGroupCommands(app, f.group);
  AddPlacementCommands(app, f.placement);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "ferry: " << e.what() << "\nRun 'ferry --help' for usage.\n";
    return kExitUsage;
  }
  f.bcast.nodes_given = app.get_subcommand("bcast")->count("--nodes") > 0;
  if (absl::Status s = ValidateNamespace(f.global.ns); !s.ok()) {
    std::cerr << "ferry: " << s.message() << "\n";
    return kExitUsage;
  }
  absl::Status status = Dispatch(app, f);
  std::cout.flush();
  if (!status.ok()) std::cerr << "ferry: " << status.message() << "\n";
  return ExitCodeOf(status);
}

}  // namespace
}  // namespace ferry::cli

int main(int argc, char** argv) {
  ferry::DisableMutexDeadlockDetection();
  try {
    return ferry::cli::Main(argc, argv);
  } catch (const std::exception& e) {  // bad_alloc and the like: report, never abort
    std::cerr << "ferry: internal error: " << e.what() << "\n";
    return ferry::cli::kExitFailed;
  }
}
