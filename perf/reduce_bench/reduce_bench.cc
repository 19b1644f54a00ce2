// ferry-reduce-bench: how fast ReduceInto (core/reduce.h) combines host buffers, per op and
// dtype, over a doubling range of sizes, in nccl-tests' columns (size, count, type, op, time,
// algbw, errors). Every row is checked first: dst = 1 and src = 2 in the dtype give 3 / 2 / 1 / 2
// for sum / prod / min / max in every element; `errors` counts the elements that differ.
// Timing: the median of --iters calls on buffers that stay in place (dst keeps accumulating
// src = 1, which changes no kernel's speed). algbw = dst bytes / time.
//
//   ferry-reduce-bench -b 64K -e 64M --ops sum --dtypes f32,bf16 [--portable]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "core/dtype.h"
#include "core/reduce.h"

namespace ferry {
namespace {

// Anonymous memory populated at allocation: first-touch faults must not be timed.
class Buffer {
 public:
  explicit Buffer(size_t len) : len_(len) {
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<uint8_t*>(p);
  }
  ~Buffer() {
    if (data_ != nullptr) munmap(data_, len_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint8_t* data() const { return data_; }

 private:
  size_t len_;
  uint8_t* data_;
};

// The bit pattern of the small integer `v` (1, 2 or 3) in `dtype`.
std::vector<uint8_t> Element(DType dtype, int v) {
  std::vector<uint8_t> e(DTypeSize(dtype));
  auto put = [&](auto x) { std::memcpy(e.data(), &x, sizeof(x)); };
  const uint16_t f16[] = {0, 0x3c00, 0x4000, 0x4200};
  const uint16_t bf16[] = {0, 0x3f80, 0x4000, 0x4040};
  switch (dtype) {
    case DType::kF32: put(static_cast<float>(v)); break;
    case DType::kF64: put(static_cast<double>(v)); break;
    case DType::kF16: put(f16[v]); break;
    case DType::kBF16: put(bf16[v]); break;
    case DType::kI32: put(static_cast<int32_t>(v)); break;
    case DType::kI64: put(static_cast<int64_t>(v)); break;
    default: put(static_cast<uint8_t>(v)); break;
  }
  return e;
}

void Fill(uint8_t* p, size_t bytes, const std::vector<uint8_t>& e) {
  for (size_t off = 0; off < bytes; off += e.size()) std::memcpy(p + off, e.data(), e.size());
}

using ReduceFn = absl::Status (*)(ReduceOp, DType, void*, const void*, size_t);

// Elements of dst that are not op(1, 2).
uint64_t CheckRow(ReduceFn reduce, ReduceOp op, DType dtype, uint8_t* dst, uint8_t* src, size_t bytes) {
  Fill(dst, bytes, Element(dtype, 1));
  Fill(src, bytes, Element(dtype, 2));
  if (!reduce(op, dtype, dst, src, bytes).ok()) return bytes / DTypeSize(dtype);
  const int want[] = {0, 3, 2, 1, 2};   // by op value: sum, prod, min, max of (1, 2)
  const std::vector<uint8_t> e = Element(dtype, want[static_cast<int>(op)]);
  uint64_t errors = 0;
  for (size_t off = 0; off < bytes; off += e.size()) errors += std::memcmp(dst + off, e.data(), e.size()) != 0;
  return errors;
}

double MedianSeconds(ReduceFn reduce, ReduceOp op, DType dtype, uint8_t* dst, uint8_t* src, size_t bytes,
                     int iters) {
  Fill(src, bytes, Element(dtype, 1));
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (!reduce(op, dtype, dst, src, bytes).ok()) return 0;
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

}  // namespace
}  // namespace ferry

int main(int argc, char** argv) {
  using namespace ferry;
  CLI::App app{"ferry-reduce-bench: host reduce kernel throughput (core/reduce.h)"};
  uint64_t min_bytes = 64 << 10;
  uint64_t max_bytes = 16 << 20;
  int iters = 20;
  std::vector<std::string> ops = {"sum", "prod", "min", "max"};
  std::vector<std::string> dtypes = {"f32", "f64", "f16", "bf16", "i32", "i64", "u8"};
  app.add_option("-b,--min-bytes", min_bytes, "smallest size (bytes; doubled up to -e)")->transform(CLI::AsSizeValue(false));
  app.add_option("-e,--max-bytes", max_bytes, "largest size (bytes)")->transform(CLI::AsSizeValue(false));
  app.add_option("-n,--iters", iters, "timed calls per row (median reported)")->check(CLI::Range(1, 100000));
  app.add_option("--ops", ops, "ops")->delimiter(',');
  app.add_option("--dtypes", dtypes, "dtypes")->delimiter(',');
  bool portable = false;
  app.add_flag("--portable", portable, "time the portable kernels (no AVX2/F16C path)");
  CLI11_PARSE(app, argc, argv);
  const ReduceFn reduce = portable ? &internal::ReduceIntoPortable : &ReduceInto;
  if (min_bytes == 0 || min_bytes > max_bytes) {
    std::fprintf(stderr, "ferry-reduce-bench: need 0 < --min-bytes <= --max-bytes\n");
    return 2;
  }
  Buffer dst(max_bytes);
  Buffer src(max_bytes);
  if (dst.data() == nullptr || src.data() == nullptr) {
    std::fprintf(stderr, "ferry-reduce-bench: cannot map 2 x %llu bytes\n", static_cast<unsigned long long>(max_bytes));
    return 1;
  }
  std::printf("%12s %12s %6s %6s %10s %10s %8s\n", "size(B)", "count", "type", "op", "time(us)", "algbw(GB/s)",
              "errors");
  uint64_t total_errors = 0;
  for (const std::string& dname : dtypes) {
    const std::optional<DType> dtype = DTypeFromName(dname);
    for (const std::string& oname : ops) {
      const std::optional<ReduceOp> op = ReduceOpFromName(oname);
      if (!dtype || !op || !DTypeSupports(*dtype, *op)) {
        std::fprintf(stderr, "ferry-reduce-bench: no kernel for op '%s' on dtype '%s'\n", oname.c_str(), dname.c_str());
        return 2;
      }
      for (uint64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 2) {
        const size_t len = bytes - bytes % DTypeSize(*dtype);
        const uint64_t errors = CheckRow(reduce, *op, *dtype, dst.data(), src.data(), len);
        const double s = MedianSeconds(reduce, *op, *dtype, dst.data(), src.data(), len, iters);
        total_errors += errors;
        std::printf("%12zu %12zu %6s %6s %10.1f %10.2f %8llu\n", len, len / DTypeSize(*dtype), dname.c_str(),
                    oname.c_str(), s * 1e6, s > 0 ? len / s / 1e9 : 0.0, static_cast<unsigned long long>(errors));
      }
    }
  }
  return total_errors == 0 ? 0 : 1;
}
