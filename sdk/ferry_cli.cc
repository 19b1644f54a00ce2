// `ferry`: the command line of a ferry cluster. Talks to the local ferryd through libferry.
//
//   ferry status                         this node and the cluster
//   ferry put FILE KEY [--dtype f32]     store a file ('-' = stdin) as an object
//   ferry get KEY FILE [--timeout 30s]   fetch an object into a file ('-' = stdout)
//   ferry ls [PREFIX]                    list objects
//   ferry rm KEY                         delete an object everywhere
//   ferry bcast KEY [--nodes a,b]        copy an object to nodes
//
// Exit status: 0 on success, 1 when an operation fails ("ferry: <message>" on stderr), 2 for
// usage errors.
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
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/names.h"
#include "common/process.h"
#include "common/status_macros.h"
#include "ferry/client.h"
#include "sdk/cli_util.h"

namespace ferry::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kDefaultSocket = "/run/ferry/ferryd.sock";
// Piece size for streaming a file into an object and an object into a file.
constexpr size_t kPiece = 16 << 20;

struct Options {
  std::string socket = kDefaultSocket;
  std::string ns = std::string(kDefaultNamespace);
  bool json = false;
  // put
  std::string file;
  std::string key;
  std::string dtype = "bytes";
  // get / bcast
  std::string timeout;
  // ls
  std::string prefix;
  uint32_t limit = 0;
  // bcast
  std::vector<std::string> nodes;
};

double SecondsSince(absl::Time start) { return absl::ToDoubleSeconds(absl::Now() - start); }

ObjectName NameOf(const Options& opt) { return ObjectName{opt.ns, opt.key}; }
std::string Printable(const Options& opt) { return PrintableName(opt.ns, opt.key); }

absl::Status FileError(absl::string_view what, const std::string& path, int err) {
  return absl::ErrnoToStatus(err, absl::StrCat(what, " '", path, "'"));
}

absl::StatusOr<std::unique_ptr<Client>> ConnectTo(const Options& opt) {
  ConnectOptions options;
  options.ns = opt.ns;
  return Client::Connect(opt.socket, options);
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
  // Closes now and reports a delayed write error (NFS, quota).
  absl::Status Close(const std::string& path) {
    int fd = std::exchange(fd_, -1);
    if (fd > STDERR_FILENO && close(fd) != 0) return FileError("closing", path, errno);
    return absl::OkStatus();
  }

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

void PrintStatus(const Options& opt, const NodeStatus& st) {
  const NodeInfo& self = st.self;
  std::cout << "node         " << (self.name.empty() ? "(unnamed)" : self.name) << " (id "
            << self.id << ") at " << opt.socket << "\n"
            << "coordinator  " << (st.coordinator_connected ? "connected" : "NOT CONNECTED") << "\n"
            << "arena        " << HumanBytes(static_cast<double>(self.arena_used)) << " used of "
            << HumanBytes(static_cast<double>(self.arena_bytes)) << ", " << self.objects
            << " objects, " << st.pinned << " pinned, " << st.evictions << " evictions\n"
            << "traffic      " << HumanBytes(static_cast<double>(st.bytes_received))
            << " received, " << HumanBytes(static_cast<double>(st.bytes_sent)) << " sent, "
            << st.retries << " retries, " << st.failures << " failures\n\n";
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
            << rows.size() << " nodes, "
            << std::count_if(rows.begin(), rows.end(), [](const auto& r) { return r[3] == "yes"; })
            << " alive\n";
}

absl::Status RunStatus(const Options& opt) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(opt));
  FERRY_ASSIGN_OR_RETURN(NodeStatus st, client->Status());
  if (!opt.json) {
    PrintStatus(opt, st);
    return absl::OkStatus();
  }
  json out{{"socket", opt.socket},
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
absl::Status PutRegularFile(Client& client, const Options& opt, DType dtype, int fd,
                            uint64_t size) {
  ObjectMeta meta;
  meta.size = size;
  meta.dtype = dtype;
  FERRY_ASSIGN_OR_RETURN(WritableObject object, client.Create(NameOf(opt), meta));
  // Any early return below destroys `object`, which aborts it.
  for (uint64_t done = 0; done < size;) {
    const uint64_t len = std::min<uint64_t>(size - done, kPiece);
    FERRY_RETURN_IF_ERROR(ReadExactly(fd, object.data() + done, len, opt.file, done, size));
    done += len;
  }
  return object.Seal();
}

absl::StatusOr<uint64_t> PutInput(Client& client, const Options& opt, DType dtype) {
  const bool use_stdin = opt.file == "-";
  File file(use_stdin ? STDIN_FILENO : open(opt.file.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.fd() < 0) return FileError("opening", opt.file, errno);
  struct stat st = {};
  if (fstat(file.fd(), &st) != 0) return FileError("stat of", opt.file, errno);
  if (S_ISDIR(st.st_mode))
    return absl::InvalidArgumentError(absl::StrCat("'", opt.file, "' is a directory"));
  if (S_ISREG(st.st_mode)) {
    const uint64_t size = static_cast<uint64_t>(st.st_size);
    FERRY_RETURN_IF_ERROR(PutRegularFile(client, opt, dtype, file.fd(), size));
    return size;
  }
  // A pipe, terminal or device: the size is unknown until EOF, so read it all first.
  FERRY_ASSIGN_OR_RETURN(std::vector<uint8_t> data,
                         ReadAll(file.fd(), use_stdin ? "<stdin>" : opt.file));
  FERRY_RETURN_IF_ERROR(client.Put(NameOf(opt), data, dtype));
  return data.size();
}

absl::Status RunPut(const Options& opt) {
  const std::optional<DType> dtype = DTypeFromName(opt.dtype);
  if (!dtype) return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", opt.dtype, "'"));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(opt));
  const absl::Time start = absl::Now();
  FERRY_ASSIGN_OR_RETURN(uint64_t bytes, PutInput(*client, opt, *dtype));
  const double seconds = SecondsSince(start);
  if (opt.json) {
    std::cout << DumpJson(json{{"ns", opt.ns},
                               {"key", EscapeKey(opt.key)},
                               {"bytes", bytes},
                               {"dtype", DTypeName(*dtype)},
                               {"seconds", seconds},
                               {"bytes_per_second", seconds > 0 ? bytes / seconds : 0.0}})
              << "\n";
  } else {
    std::cout << "put " << Printable(opt) << ": " << HumanBytes(static_cast<double>(bytes)) << " ("
              << bytes << " bytes, " << DTypeName(*dtype) << ") in " << FormatSeconds(seconds)
              << ", " << FormatRate(static_cast<double>(bytes), seconds) << "\n";
  }
  return absl::OkStatus();
}

// ---- get ------------------------------------------------------------------------------

absl::Status WriteOutput(const Options& opt, std::span<const uint8_t> bytes) {
  if (opt.file == "-") return WriteAll(STDOUT_FILENO, bytes.data(), bytes.size(), "<stdout>");
  File file(open(opt.file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (file.fd() < 0) return FileError("creating", opt.file, errno);
  absl::Status status = WriteAll(file.fd(), bytes.data(), bytes.size(), opt.file);
  if (status.ok()) status = file.Close(opt.file);
  if (!status.ok()) unlink(opt.file.c_str());  // leave no truncated copy behind
  return status;
}

// "local", or "node NAME (ID)" for a pulled object; the name lookup is best effort.
std::string SourceOf(Client& client, const GetInfo& info) {
  if (!info.pulled) return "local";
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

absl::Status RunGet(const Options& opt) {
  FERRY_ASSIGN_OR_RETURN(absl::Duration timeout, ParseDurationArg(opt.timeout));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(opt));
  const absl::Time start = absl::Now();
  FERRY_ASSIGN_OR_RETURN(ObjectView view, client->Get(NameOf(opt), timeout));
  const double get_seconds = SecondsSince(start);
  const absl::Time write_start = absl::Now();
  FERRY_RETURN_IF_ERROR(WriteOutput(opt, view.bytes()));
  const double write_seconds = SecondsSince(write_start);
  const GetInfo info = view.info();
  const uint64_t bytes = view.size();
  const DType dtype = view.meta().dtype;
  FERRY_RETURN_IF_ERROR(view.Release());
  const std::string source = SourceOf(*client, info);
  // Data may be going to stdout, so the report goes to stderr unless --json asks for it.
  std::ostream& report = opt.json && opt.file != "-" ? std::cout : std::cerr;
  if (opt.json) {
    report << DumpJson(json{{"ns", opt.ns},
                            {"key", EscapeKey(opt.key)},
                            {"bytes", bytes},
                            {"dtype", DTypeName(dtype)},
                            {"pulled", info.pulled},
                            {"source_node", info.source_node},
                            {"source", source},
                            {"pull_seconds", info.seconds},
                            {"get_seconds", get_seconds},
                            {"write_seconds", write_seconds}})
           << "\n";
    return absl::OkStatus();
  }
  report << "got " << Printable(opt) << ": " << HumanBytes(static_cast<double>(bytes)) << " ("
         << bytes << " bytes, " << DTypeName(dtype) << ") from " << source;
  if (info.pulled) {
    report << ", pulled in " << FormatSeconds(info.seconds) << " ("
           << FormatRate(static_cast<double>(bytes), info.seconds) << ")";
  }
  report << "; get took " << FormatSeconds(get_seconds) << ", writing "
         << (opt.file == "-" ? "<stdout>" : opt.file) << " " << FormatSeconds(write_seconds) << " ("
         << FormatRate(static_cast<double>(bytes), write_seconds) << ")\n";
  return absl::OkStatus();
}

// ---- ls / rm --------------------------------------------------------------------------

absl::Status RunLs(const Options& opt) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(opt));
  FERRY_ASSIGN_OR_RETURN(std::vector<ObjectInfo> objects,
                         client->List(opt.ns, opt.prefix, opt.limit));
  if (opt.json) {
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
  std::cout << FormatTable({"KEY", "SIZE", "DTYPE", "COMPLETE", "PARTIAL"}, rows) << objects.size()
            << " objects in namespace " << opt.ns << ", " << HumanBytes(total) << "\n";
  return absl::OkStatus();
}

absl::Status RunRm(const Options& opt) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(opt));
  FERRY_RETURN_IF_ERROR(client->Delete(NameOf(opt)));
  if (opt.json) {
    std::cout << DumpJson(json{{"ns", opt.ns}, {"key", EscapeKey(opt.key)}, {"deleted", true}})
              << "\n";
  } else {
    std::cout << "deleted " << Printable(opt) << "\n";
  }
  return absl::OkStatus();
}

// ---- bcast ----------------------------------------------------------------------------

absl::Status RunBcast(const Options& opt) {
  FERRY_ASSIGN_OR_RETURN(absl::Duration timeout, ParseDurationArg(opt.timeout));
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, ConnectTo(opt));
  FERRY_ASSIGN_OR_RETURN(BroadcastResult result,
                         client->Broadcast(NameOf(opt), opt.nodes, timeout));
  size_t failed = 0;
  std::vector<std::vector<std::string>> rows;
  json targets = json::array();
  for (const BroadcastResult::Target& t : result.targets) {
    failed += t.ok ? 0 : 1;
    rows.push_back({t.node, t.ok ? "ok" : "FAILED", t.error});
    targets.push_back(json{{"node", t.node}, {"ok", t.ok}, {"error", t.error}});
  }
  if (opt.json) {
    std::cout << DumpJson(json{{"ns", opt.ns},
                               {"key", EscapeKey(opt.key)},
                               {"seconds", result.seconds},
                               {"targets", targets}})
              << "\n";
  } else {
    std::cout << FormatTable({"NODE", "RESULT", "ERROR"}, rows) << "broadcast " << Printable(opt)
              << " to " << result.targets.size() << " nodes: " << result.targets.size() - failed
              << " ok, " << failed << " failed in " << FormatSeconds(result.seconds) << "\n";
  }
  if (failed > 0) {
    return absl::AbortedError(absl::StrCat("broadcast of ", Printable(opt), " failed on ", failed,
                                           " of ", result.targets.size(), " nodes"));
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

void AddGlobalOptions(CLI::App& app, Options& opt) {
  app.add_option("--socket", opt.socket, "ferryd's unix socket")
      ->envname("FERRY_SOCKET")
      ->capture_default_str();
  app.add_option("--ns", opt.ns, "object namespace")->capture_default_str();
  app.add_flag("--json", opt.json,
               "machine-readable output (keys escaped as \\xNN where not printable)");
}

void AddObjectCommands(CLI::App& app, Options& opt) {
  CLI::App* put =
      app.add_subcommand("put", "store FILE as object KEY (streams it into ferryd's arena)");
  put->add_option("FILE", opt.file, "file to read; '-' reads stdin")->required();
  put->add_option("KEY", opt.key, "object key")->required();
  put->add_option("--dtype", opt.dtype, "element type: bytes, f32, f64, f16, bf16, i32, i64, u8")
      ->check(DTypeValidator())
      ->capture_default_str();

  CLI::App* get = app.add_subcommand("get", "fetch object KEY (from any node) into FILE");
  get->add_option("KEY", opt.key, "object key")->required();
  get->add_option("FILE", opt.file, "file to write; '-' writes stdout")->required();
  get->add_option("--timeout", opt.timeout, "how long to wait for KEY to exist (30s, 500ms, 2m)")
      ->check(DurationValidator())
      ->default_val("30s");

  CLI::App* ls = app.add_subcommand("ls", "list objects in the namespace");
  ls->add_option("PREFIX", opt.prefix, "only keys starting with PREFIX");
  ls->add_option("--limit", opt.limit, "at most this many objects (0: all)")->capture_default_str();

  CLI::App* rm = app.add_subcommand("rm", "delete object KEY on every node");
  rm->add_option("KEY", opt.key, "object key")->required();

  CLI::App* bcast = app.add_subcommand("bcast", "make nodes hold a complete copy of KEY");
  bcast->add_option("KEY", opt.key, "object key")->required();
  bcast
      ->add_option("--nodes", opt.nodes,
                   "node names or ids, comma-separated (default: every live node)")
      ->delimiter(',');
  bcast->add_option("--timeout", opt.timeout, "give up after this long (30s, 500ms, 2m)")
      ->check(DurationValidator())
      ->default_val("60s");
}

absl::Status Dispatch(const CLI::App& app, const Options& opt) {
  if (app.got_subcommand("status")) return RunStatus(opt);
  if (app.got_subcommand("put")) return RunPut(opt);
  if (app.got_subcommand("get")) return RunGet(opt);
  if (app.got_subcommand("ls")) return RunLs(opt);
  if (app.got_subcommand("rm")) return RunRm(opt);
  if (app.got_subcommand("bcast")) return RunBcast(opt);
  return absl::InvalidArgumentError("no command given");
}

int Main(int argc, char** argv) {
  Options opt;
  CLI::App app("ferry: inspect a ferry cluster and move objects through it", "ferry");
  app.fallthrough();  // global options may follow the subcommand
  app.footer(
      "Durations: 30s, 500ms, 2m (a bare number is seconds). FERRY_SOCKET sets the default "
      "--socket.\nExit status: 0 ok, 1 the operation failed, 2 usage error.");
  app.require_subcommand(1);
  AddGlobalOptions(app, opt);
  app.add_subcommand("status", "this node and the cluster: nodes, arenas, links, coordinator");
  AddObjectCommands(app, opt);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::cerr << "ferry: " << e.what() << "\nRun 'ferry --help' for usage.\n";
    return 2;
  }
  if (absl::Status s = ValidateNamespace(opt.ns); !s.ok()) {
    std::cerr << "ferry: " << s.message() << "\n";
    return 2;
  }
  absl::Status status = Dispatch(app, opt);
  std::cout.flush();
  if (!status.ok()) {
    std::cerr << "ferry: " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace ferry::cli

int main(int argc, char** argv) {
  ferry::DisableMutexDeadlockDetection();
  try {
    return ferry::cli::Main(argc, argv);
  } catch (const std::exception& e) {  // bad_alloc and the like: report, never abort
    std::cerr << "ferry: internal error: " << e.what() << "\n";
    return 1;
  }
}
