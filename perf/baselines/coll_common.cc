#include "perf/baselines/coll_common.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>

#include <CLI/CLI.hpp>

namespace ferry::perf {

void AddSweepOptions(CLI::App& app, SweepOptions* o) {
  app.add_option("-b,--min-bytes", o->min_bytes, "smallest message size (1K, 4M, ...)")
      ->capture_default_str();
  app.add_option("-e,--max-bytes", o->max_bytes, "largest message size")->capture_default_str();
  app.add_option("-f,--factor", o->factor, "size multiplier between steps")->capture_default_str();
  app.add_option("-n,--iters", o->iters, "timed iterations per size (upper bound)")
      ->capture_default_str();
  app.add_option("-w,--warmup", o->warmup, "untimed warm-up iterations per size (upper bound)")
      ->capture_default_str();
  app.add_option("--iter-bytes", o->iter_bytes,
                 "scale iterations down for big sizes: iters = clamp(B / size, 1, --iters)");
  app.add_option("--warmup-bytes", o->warmup_bytes,
                 "scale warm-up down for big sizes: warmup = clamp(B / size, 0, --warmup)");
  app.add_option("-o,--op", o->op, "reduction op (only sum)")->capture_default_str();
  app.add_option("-d,--dtype", o->dtype, "element type (only f32)")->capture_default_str();
  app.add_option("-r,--root", o->root, "root rank for broadcast and reduce")->capture_default_str();
  app.add_option("--json", o->json_path, "append one JSON line per size to this file (rank 0)");
  app.add_flag("!--no-check", o->check, "skip result verification (errors reported as -1)");
  // Hidden test hook (empty group): rank R damages one element of its result before the
  // check, to prove the check catches it.
  app.add_option("--corrupt-rank", o->corrupt_rank, "")->group("");
}

bool ParseBytes(const std::string& text, uint64_t* bytes) {
  if (text.empty()) return false;
  size_t pos = 0;
  while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) ++pos;
  if (pos == 0 || pos > 15) return false;
  uint64_t value = std::stoull(text.substr(0, pos));
  std::string suffix = text.substr(pos);
  for (auto& ch : suffix) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (suffix == "B") suffix.clear();
  if (suffix.size() == 2 && suffix[1] == 'B') suffix.resize(1);
  int shift = 0;
  if (suffix.empty()) {
    shift = 0;
  } else if (suffix == "K") {
    shift = 10;
  } else if (suffix == "M") {
    shift = 20;
  } else if (suffix == "G") {
    shift = 30;
  } else {
    return false;
  }
  *bytes = value << shift;
  return true;
}

bool ValidateSweepOptions(const SweepOptions& o, int nranks, std::string* why) {
  uint64_t lo = 0, hi = 0, ib = 0;
  if (!ParseBytes(o.min_bytes, &lo) || !ParseBytes(o.max_bytes, &hi)) {
    *why = "bad --min-bytes/--max-bytes (use e.g. 1K, 256M)";
  } else if (lo < 4 || hi < lo) {
    *why = "need 4 <= --min-bytes <= --max-bytes";
  } else if (hi / 4 > static_cast<uint64_t>(INT32_MAX)) {
    *why = "--max-bytes too large (element count must fit an int)";
  } else if (o.factor < 2) {
    *why = "--factor must be >= 2";
  } else if (o.iters < 1 || o.warmup < 0) {
    *why = "need --iters >= 1 and --warmup >= 0";
  } else if ((!o.iter_bytes.empty() && !ParseBytes(o.iter_bytes, &ib)) ||
             (!o.warmup_bytes.empty() && !ParseBytes(o.warmup_bytes, &ib))) {
    *why = "bad --iter-bytes/--warmup-bytes";
  } else if (o.op != "sum") {
    *why = "only --op sum is supported (got '" + o.op + "')";
  } else if (o.dtype != "f32" && o.dtype != "float") {
    *why = "only --dtype f32 is supported (got '" + o.dtype + "')";
  } else if (o.root < 0 || o.root >= nranks) {
    *why = "--root must be in [0, " + std::to_string(nranks) + ")";
  } else {
    return true;
  }
  return false;
}

std::vector<uint64_t> SweepSizes(const SweepOptions& o) {
  uint64_t lo = 0, hi = 0;
  ParseBytes(o.min_bytes, &lo);
  ParseBytes(o.max_bytes, &hi);
  std::vector<uint64_t> sizes;
  for (uint64_t s = lo; s <= hi && sizes.size() < 64; s *= static_cast<uint64_t>(o.factor)) {
    sizes.push_back(s / 4 * 4);
  }
  return sizes;
}

int ItersFor(const SweepOptions& o, uint64_t bytes) {
  uint64_t budget = 0;
  if (o.iter_bytes.empty() || !ParseBytes(o.iter_bytes, &budget)) return o.iters;
  uint64_t n = budget / std::max<uint64_t>(bytes, 1);
  return static_cast<int>(std::clamp<uint64_t>(n, 1, static_cast<uint64_t>(o.iters)));
}

int WarmupFor(const SweepOptions& o, uint64_t bytes) {
  uint64_t budget = 0;
  if (o.warmup_bytes.empty() || !ParseBytes(o.warmup_bytes, &budget)) return o.warmup;
  uint64_t n = budget / std::max<uint64_t>(bytes, 1);
  return static_cast<int>(std::min<uint64_t>(n, static_cast<uint64_t>(o.warmup)));
}

void FillInput(float* data, size_t count, int rank) {
  for (size_t i = 0; i < count; ++i) data[i] = InputValue(rank, i);
}

void FillSentinel(float* data, size_t count) { std::fill(data, data + count, -1.0f); }

size_t CountErrors(const float* data, size_t count, Expect expect, int root, int nranks) {
  if (expect == Expect::kNothing) return 0;
  size_t errors = 0;
  if (expect == Expect::kRootInput) {
    for (size_t i = 0; i < count; ++i) errors += data[i] != InputValue(root, i);
    return errors;
  }
  // sum_r ((i % 1021) + r + 1) = n * (i % 1021) + n (n + 1) / 2, exact in float32.
  const float n = static_cast<float>(nranks);
  const float offset = n * (n + 1.0f) / 2.0f;
  for (size_t i = 0; i < count; ++i) {
    errors += data[i] != n * static_cast<float>(i % 1021) + offset;
  }
  return errors;
}

double BusBwFactor(const std::string& coll, int nranks) {
  if (coll == "allreduce") return 2.0 * (nranks - 1) / nranks;
  return 1.0;
}

namespace {

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0.0;
  // Nearest-rank on the sorted samples, q in [0, 1]; the median of an even count averages.
  if (q == 0.5 && v.size() % 2 == 0) return (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2.0;
  size_t idx = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(idx, v.size() - 1)];
}

void EmitRow(const Comm& comm, const SweepOptions& o, const CollCase& c, uint64_t bytes,
             int iters, const std::vector<double>& times, int64_t errors) {
  const double med = Quantile(times, 0.5);
  const double p90 = Quantile(times, 0.9);
  const double algbw = med > 0 ? static_cast<double>(bytes) / med : 0.0;
  const double busbw = algbw * BusBwFactor(c.coll, comm.size);
  std::printf("%12llu %11llu %5s %4s %10s %12.1f %12.1f %8.3f %8.3f %7lld  %s\n",
              static_cast<unsigned long long>(bytes), static_cast<unsigned long long>(bytes / 4),
              "float", o.op.c_str(), c.coll.c_str(), med * 1e6, p90 * 1e6, algbw / 1e9,
              busbw / 1e9, static_cast<long long>(errors), c.algo.c_str());
  char line[1024];
  std::snprintf(line, sizeof(line),
                "{\"system\":\"%s\",\"coll\":\"%s\",\"algo\":\"%s\",\"bytes\":%llu,\"nodes\":%d,"
                "\"op\":\"%s\",\"dtype\":\"f32\",\"iters\":%d,\"time_median_s\":%.9g,"
                "\"time_p90_s\":%.9g,\"algbw_Bps\":%.6g,\"busbw_Bps\":%.6g,\"errors\":%lld}",
                c.system.c_str(), c.coll.c_str(), c.algo.c_str(),
                static_cast<unsigned long long>(bytes), comm.size, o.op.c_str(), iters, med, p90,
                algbw, busbw, static_cast<long long>(errors));
  std::printf("%s\n", line);
  std::fflush(stdout);
  if (!o.json_path.empty()) {
    if (std::FILE* f = std::fopen(o.json_path.c_str(), "a")) {
      std::fprintf(f, "%s\n", line);
      std::fclose(f);
    } else {
      std::fprintf(stderr, "cannot append to %s\n", o.json_path.c_str());
    }
  }
}

}  // namespace

void PrintTableHeader(std::FILE* out, const std::string& system, int nranks) {
  std::fprintf(out, "# %s: %d ranks; time = max over ranks per iteration (barrier before each)\n",
               system.c_str(), nranks);
  std::fprintf(out, "# %10s %11s %5s %4s %10s %12s %12s %8s %8s %7s  %s\n", "size(B)", "count",
               "type", "op", "coll", "median(us)", "p90(us)", "algbw", "busbw", "errors", "algo");
  std::fprintf(out, "# %10s %11s %5s %4s %10s %12s %12s %8s %8s %7s\n", "", "(elements)", "", "",
               "", "", "", "(GB/s)", "(GB/s)", "");
  std::fflush(out);
}

uint64_t RunSweep(const Comm& comm, const SweepOptions& o, CollCase& c) {
  uint64_t total_errors = 0;
  for (uint64_t bytes : SweepSizes(o)) {
    const size_t count = bytes / 4;
    const int iters = ItersFor(o, bytes);
    const int warmup = WarmupFor(o, bytes);
    c.prepare(count);
    std::vector<double> times(static_cast<size_t>(iters), 0.0);
    uint64_t errors = 0;
    for (int it = -warmup; it < iters; ++it) {
      c.reset();
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      c.run();
      const auto t1 = std::chrono::steady_clock::now();
      if (it < 0) continue;
      times[static_cast<size_t>(it)] = std::chrono::duration<double>(t1 - t0).count();
      float* out = c.result();
      if (o.corrupt_rank == comm.rank && out != nullptr && count > 0 &&
          c.expect() != Expect::kNothing) {
        out[count / 2] = -out[count / 2] - 7.0f;
      }
      if (o.check && out != nullptr) {
        errors += CountErrors(out, count, c.expect(), o.root, comm.size);
      }
    }
    comm.max_in_place(times);
    errors = comm.sum(errors);
    total_errors += errors;
    if (comm.rank == 0) {
      EmitRow(comm, o, c, bytes, iters, times, o.check ? static_cast<int64_t>(errors) : -1);
    }
  }
  c.prepare(0);  // release buffers
  return total_errors;
}

}  // namespace ferry::perf
