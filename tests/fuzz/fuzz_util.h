// Helpers shared by the libFuzzer targets in tests/fuzz.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

// A property every input must keep; a violation is a finding (abort: libFuzzer saves the input).
#define FUZZ_CHECK(cond)                                                           \
  do {                                                                             \
    if (!(cond)) {                                                                 \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                \
    }                                                                              \
  } while (0)

// A call that must succeed for every input; on failure prints the status it returned.
#define FUZZ_CHECK_OK(expr)                                                          \
  do {                                                                               \
    const auto& fuzz_status_ = (expr);                                               \
    if (!fuzz_status_.ok()) {                                                        \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK_OK failed: %s: %s\n", __FILE__, __LINE__, #expr, \
                   std::string(fuzz_status_.status().ToString()).c_str());           \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)

namespace ferry::fuzz {

// Consumes an input from the front: fixed-size integers and length-prefixed byte strings.
// Reads past the end yield zeros / empty strings (so every input is valid to consume).
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(reinterpret_cast<const char*>(data)), size_(size) {}
  explicit Reader(std::string_view s) : data_(s.data()), size_(s.size()) {}

  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return size_ - pos_; }

  uint8_t Byte() {
    if (pos_ >= size_) return 0;
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint32_t U32() {
    uint32_t v = 0;
    const size_t n = std::min(sizeof(v), remaining());
    std::memcpy(&v, data_ + pos_, n);
    pos_ += n;
    return v;
  }
  // A string of (u16 little-endian length) bytes, clamped to what is left.
  std::string_view Chunk() {
    uint16_t len = static_cast<uint16_t>(Byte());
    len |= static_cast<uint16_t>(Byte()) << 8;
    const size_t n = std::min<size_t>(len, remaining());
    std::string_view out(data_ + pos_, n);
    pos_ += n;
    return out;
  }
  std::string_view Rest() {
    std::string_view out(data_ + pos_, remaining());
    pos_ = size_;
    return out;
  }

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

// The framing Reader::Chunk reads (for seed generators).
inline std::string Framed(std::string_view bytes) {
  std::string out;
  out.push_back(static_cast<char>(bytes.size() & 0xff));
  out.push_back(static_cast<char>((bytes.size() >> 8) & 0xff));
  out.append(bytes);
  return out;
}

}  // namespace ferry::fuzz
