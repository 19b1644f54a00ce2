// Tests of the UCX worker address validator (dataplane/ucx/ucx_address.h) on real addresses
// (v1 and v2, with and without NET_ONLY), on every truncation, trailing bytes, every single-bit
// flip and random garbage, on hand-built addresses at UCX's limits, and through
// UcxTransport::AddPeer. UCX runs on loopback only (UCX_NET_DEVICES=lo, set below before any
// UCX call); flipped addresses are connected to only when their device-address bytes, which
// hold the IP, are unchanged.
#include "dataplane/ucx/ucx_address.h"

#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "dataplane/ucx/ucx_transport.h"
#include "dataplane/ucx/ucx_wire.h"
#include "tests/unit/transport/transport_test_util.h"

namespace ferry::dataplane {
namespace {

using namespace std::chrono_literals;
using testing::Completion;
using ucx::ParseWorkerAddress;
using ucx::ValidateWorkerAddress;

// Loopback only, before the first UCX call in this process.
const bool kLoopbackOnly = [] {
  setenv("UCX_NET_DEVICES", "lo", 1);
  setenv("UCX_TLS", "tcp,self,sm", 0);
  return true;
}();

struct Variant {
  std::string name;
  bool net_only;
  const char* version;  // UCX_ADDRESS_VERSION for this context only
};

const Variant kVariants[] = {
    {"v1_net_only", true, "v1"},
    {"v1_all", false, "v1"},
    {"v2_net_only", true, "v2"},
    {"v2_all", false, "v2"},
};

std::unique_ptr<Transport> MakeUcx(NodeId id, const Variant& v) {
  UcxTransportOptions options;
  options.self = id;
  options.net_only_address = v.net_only;
  options.ucx_config = {{"ADDRESS_VERSION", v.version}};
  auto t = CreateUcxTransport(options);
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

// The UCX worker address inside a transport's ferry address blob.
std::string WorkerAddress(const Transport& t) {
  const std::string blob = t.LocalAddress();
  return blob.substr(4 + sizeof(NodeId));
}

std::string Hex(std::string_view s) {
  std::string out;
  for (unsigned char c : s) absl::StrAppend(&out, absl::Hex(c, absl::kZeroPad2));
  return out;
}

class RealAddresses : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    t_ = MakeUcx(1, GetParam());
    ASSERT_NE(t_, nullptr);
    addr_ = WorkerAddress(*t_);
  }
  std::unique_ptr<Transport> t_;
  std::string addr_;
};

TEST_P(RealAddresses, Accepted) {
  auto layout = ParseWorkerAddress(addr_);
  ASSERT_TRUE(layout.ok()) << layout.status() << "\n" << Hex(addr_);
  EXPECT_EQ(layout->version, GetParam().version[1] - '0') << "ucp_config_modify did not apply";
  EXPECT_GE(layout->device_addresses.size(), 1u);
  EXPECT_GE(layout->iface_addresses.size(), 1u);
  EXPECT_EQ(layout->ep_addresses, 0u);  // worker addresses carry no ep addresses
  std::printf("%s: %zu bytes, %zu devices, %zu ifaces\n", GetParam().name.c_str(), addr_.size(),
              layout->device_addresses.size(), layout->iface_addresses.size());
}

TEST_P(RealAddresses, EveryTruncationRejected) {
  for (size_t n = 0; n < addr_.size(); ++n) {
    absl::Status s = ValidateWorkerAddress(std::string_view(addr_).substr(0, n));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "prefix of " << n << " bytes";
  }
}

TEST_P(RealAddresses, TrailingBytesRejected) {
  for (size_t extra = 1; extra <= 16; ++extra) {
    absl::Status s = ValidateWorkerAddress(addr_ + std::string(extra, '\0'));
    ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("trailing"), std::string::npos) << s;
  }
}

TEST_P(RealAddresses, WrongVersionRejected) {
  for (int v = 2; v < 16; ++v) {
    std::string bad = addr_;
    bad[0] = static_cast<char>((bad[0] & 0xf0) | v);
    absl::Status s = ValidateWorkerAddress(bad);
    ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("version"), std::string::npos) << s;
    EXPECT_NE(s.message().find("offset 0"), std::string::npos) << s;
  }
}

// Every single-bit flip is either rejected or accepted; flips that keep every device address
// byte (the IP) where it was are connected to and must not crash anything.
TEST_P(RealAddresses, BitFlipsRejectedOrHarmless) {
  auto orig = ParseWorkerAddress(addr_);
  ASSERT_TRUE(orig.ok());
  auto same_devices = [&](const ucx::WorkerAddressLayout& l, const std::string& blob) {
    if (l.device_addresses.size() != orig->device_addresses.size()) return false;
    for (size_t i = 0; i < l.device_addresses.size(); ++i) {
      const auto& a = orig->device_addresses[i];
      const auto& b = l.device_addresses[i];
      if (a.length != b.length ||
          blob.compare(b.offset, b.length, addr_, a.offset, a.length) != 0) {
        return false;
      }
    }
    return true;
  };
  std::vector<std::string> to_connect;
  size_t accepted = 0;
  for (size_t bit = 0; bit < addr_.size() * 8; ++bit) {
    std::string flipped = addr_;
    flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
    auto l = ParseWorkerAddress(flipped);
    if (!l.ok()) {
      EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
      continue;
    }
    ++accepted;
    if (same_devices(*l, flipped)) to_connect.push_back(flipped);
  }
  std::printf("%s: %zu of %zu flips accepted, %zu connected to\n", GetParam().name.c_str(),
              accepted, addr_.size() * 8, to_connect.size());
  // Connect only over the network transports: a flipped shared-memory iface address names
  // another segment on this host.
  if (!GetParam().net_only) return;
  ASSERT_STREQ(std::getenv("UCX_NET_DEVICES"), "lo");
  size_t delivered = 0;
  for (size_t i = 0; i < to_connect.size(); ++i) {
    const NodeId id = 100 + i;
    ASSERT_TRUE(t_->AddPeer(id, ucx::EncodeAddress(id, to_connect[i])).ok());
    Completion c;
    t_->SendControl(id, "probe", c.done());
    std::optional<absl::Status> st = c.Wait(20s);
    t_->RemovePeer(id);  // fails it with UNAVAILABLE if it is still outstanding
    if (!st) st = c.Wait(20s);
    ASSERT_TRUE(st.has_value()) << "control message to flip " << i << " hung";
    if (st->ok()) ++delivered;
  }
  std::printf("%s: %zu of %zu sent\n", GetParam().name.c_str(), delivered, to_connect.size());
  // The transport still works with a good peer afterwards.
  auto peer = MakeUcx(2, GetParam());
  ASSERT_NE(peer, nullptr);
  ASSERT_TRUE(t_->AddPeer(2, peer->LocalAddress()).ok());
  Completion c;
  t_->SendControl(2, "hello", c.done());
  auto st = c.Wait(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->ok()) << *st;
}

INSTANTIATE_TEST_SUITE_P(Ucx, RealAddresses, ::testing::ValuesIn(kVariants),
                         [](const auto& info) { return info.param.name; });

TEST(UcxAddress, RandomGarbageRejected) {
  std::mt19937 rng(20240611);
  size_t accepted = 0;
  for (size_t len = 0; len <= 600; ++len) {
    for (int rep = 0; rep < 20; ++rep) {
      std::string blob(len, '\0');
      for (char& c : blob) c = static_cast<char>(rng());
      absl::Status s = ValidateWorkerAddress(blob);
      if (s.ok()) ++accepted;
    }
  }
  EXPECT_EQ(accepted, 0u);
}

// Hand-built addresses: a v2 worker address with one device and one iface, by parts.
struct Builder {
  std::string header = std::string("\x01\x02", 2) + std::string(8, 'u');  // v2, uuid flag
  std::string md = std::string(1, '\x00');
  std::string device = std::string("\x84\x7f\x00\x00\x01", 5);  // LAST, 4 bytes
  std::string iface_attrs = std::string("\x12\x00", 2) +                 // tl csum
                            std::string("\x00\x18\x05\x00\x80\x00\x03\x00", 8);
  std::string iface = std::string("\x82", 1) + "pp";  // LAST, 2 bytes
  std::string eps;
  std::string Build() const { return header + md + device + iface_attrs + iface + eps; }
};

TEST(UcxAddress, HandBuiltBaselineAccepted) {
  auto l = ParseWorkerAddress(Builder().Build());
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->version, 2);
  ASSERT_EQ(l->device_addresses.size(), 1u);
  EXPECT_EQ(l->device_addresses[0].length, 4u);
  EXPECT_EQ(l->iface_addresses[0].length, 2u);
}

TEST(UcxAddress, MdIndexAtLeast64Rejected) {
  Builder b;
  b.md = std::string("\x7f\x3f", 2);  // extended: 63
  EXPECT_TRUE(ValidateWorkerAddress(b.Build()).ok());
  b.md = std::string("\x7f\x40", 2);  // 64
  absl::Status s = ValidateWorkerAddress(b.Build());
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("md index 64"), std::string::npos) << s;
  b.md = std::string("\x7f\xff", 2);
  EXPECT_FALSE(ValidateWorkerAddress(b.Build()).ok());
}

std::string Eps(int count, int lane_of_last, bool last_flag) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    out += std::string("\x02", 1) + "ee";
    const bool last = i == count - 1;
    uint8_t lane = static_cast<uint8_t>(last ? lane_of_last : i);
    if (last && last_flag) lane |= 0x80;
    out += static_cast<char>(lane);
  }
  return out;
}

TEST(UcxAddress, EpAddressLimits) {
  Builder b;
  b.iface = std::string("\xc2", 1) + "pp";  // LAST | HAS_EP_ADDR, 2 bytes
  b.eps = Eps(6, 5, true);
  EXPECT_TRUE(ValidateWorkerAddress(b.Build()).ok()) << ValidateWorkerAddress(b.Build());
  b.eps = Eps(7, 6, true);  // too many lanes
  absl::Status s = ValidateWorkerAddress(b.Build());
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("more than 6 ep addresses"), std::string::npos) << s;
  b.eps = Eps(2, 6, true);  // lane index 6
  s = ValidateWorkerAddress(b.Build());
  EXPECT_NE(s.message().find("lane must be < 6"), std::string::npos) << s;
  b.eps = Eps(2, 1, false);  // no LAST: runs into the end
  EXPECT_FALSE(ValidateWorkerAddress(b.Build()).ok());
}

TEST(UcxAddress, TooManyIfacesAndDevicesRejected) {
  Builder b;
  const std::string one_iface = b.iface_attrs + std::string("\x02", 1) + "pp";  // not LAST
  std::string ifaces;
  for (int i = 0; i < 127; ++i) ifaces += one_iface;
  b.iface_attrs = ifaces + b.iface_attrs;  // 128 ifaces in all
  EXPECT_TRUE(ValidateWorkerAddress(b.Build()).ok());
  b.iface_attrs = one_iface + b.iface_attrs;  // 129
  absl::Status s = ValidateWorkerAddress(b.Build());
  EXPECT_NE(s.message().find("more than 128 ifaces"), std::string::npos) << s;

  Builder d;
  const std::string empty_dev = std::string("\x80\x00", 2);  // EMPTY md, not-LAST, 0 bytes
  std::string devs;
  for (int i = 0; i < 63; ++i) devs += empty_dev;
  d.md = devs + d.md;  // 64 devices
  EXPECT_TRUE(ValidateWorkerAddress(d.Build()).ok());
  d.md = empty_dev + d.md;  // 65
  s = ValidateWorkerAddress(d.Build());
  EXPECT_NE(s.message().find("more than 64 devices"), std::string::npos) << s;
}

TEST(UcxAddress, AttributesAndFlagsChecked) {
  Builder b;
  b.iface_attrs[2 + 1] = '\x0f';  // bandwidth exponent 15: NaN/infinity
  EXPECT_NE(ValidateWorkerAddress(b.Build()).message().find("non-finite"), std::string::npos);
  b = Builder();
  b.iface_attrs[2 + 1] = '\x00';  // bandwidth 0
  EXPECT_NE(ValidateWorkerAddress(b.Build()).message().find("zero iface bandwidth"),
            std::string::npos);
  b = Builder();
  b.iface_attrs[2 + 4] = '\x00';  // AM iface with segment size 0
  EXPECT_NE(ValidateWorkerAddress(b.Build()).message().find("segment size 0"), std::string::npos);
  b = Builder();
  b.iface_attrs[2 + 7] = '\x04';  // iface flag bit 10
  EXPECT_NE(ValidateWorkerAddress(b.Build()).message().find("unknown iface flags"),
            std::string::npos);
  b = Builder();
  b.header[1] = '\x12';  // header flag bit 4
  EXPECT_NE(ValidateWorkerAddress(b.Build()).message().find("unknown header flags"),
            std::string::npos);
  b = Builder();
  b.device = std::string("\xc4\x00\x7f\x00\x00\x01", 6);  // NUM_PATHS = 0
  EXPECT_NE(ValidateWorkerAddress(b.Build()).message().find("0 paths"), std::string::npos);
  b = Builder();
  b.md = "\xff";  // UCP_NULL_RESOURCE: no devices
  b.device = b.iface_attrs = b.iface = "";
  EXPECT_NE(ValidateWorkerAddress(b.Build()).message().find("no devices"), std::string::npos);

  // v1: 16-byte attributes with floats.
  Builder v1;
  v1.header = std::string("\x00", 1) + std::string(8, 'u');  // v1, uuid always present
  auto attrs = [](float overhead, float bw, float lat) {
    std::string a("\x12\x00", 2);
    for (float f : {overhead, bw, lat}) a.append(reinterpret_cast<const char*>(&f), 4);
    a.append("\x00\x01\x00\x00", 4);
    return a;
  };
  v1.iface_attrs = attrs(1e-9f, 1e9f, 1e-6f);
  EXPECT_TRUE(ValidateWorkerAddress(v1.Build()).ok()) << ValidateWorkerAddress(v1.Build());
  v1.iface_attrs = attrs(1e-9f, -1e9f, 1e-6f);  // UCX <= 1.11 "shared" bandwidth: legal
  EXPECT_TRUE(ValidateWorkerAddress(v1.Build()).ok());
  for (float bad : {std::nanf(""), INFINITY}) {
    v1.iface_attrs = attrs(1e-9f, bad, 1e-6f);
    EXPECT_NE(ValidateWorkerAddress(v1.Build()).message().find("non-finite"), std::string::npos);
    v1.iface_attrs = attrs(bad, 1e9f, 1e-6f);
    EXPECT_FALSE(ValidateWorkerAddress(v1.Build()).ok());
  }
  v1.iface_attrs = attrs(1e-9f, 1e9f, -1.0f);
  EXPECT_NE(ValidateWorkerAddress(v1.Build()).message().find("negative"), std::string::npos);
}

// ---- through the transport ------------------------------------------------------------------

TEST(UcxAddPeer, InvalidAddressRefusedAndTransportKeepsWorking) {
  const Variant& v = kVariants[0];
  auto a = MakeUcx(1, v);
  auto b = MakeUcx(2, v);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  const std::string good = WorkerAddress(*b);

  std::string bad_version = good;
  bad_version[0] = static_cast<char>((bad_version[0] & 0xf0) | 5);  // aborts UCX unvalidated
  const std::string cases[] = {
      ucx::EncodeAddress(3, bad_version),
      ucx::EncodeAddress(3, good.substr(0, good.size() - 1)),
      ucx::EncodeAddress(3, good + "x"),
      ucx::EncodeAddress(3, ""),
      "FUX1",
      "garbage",
  };
  uint64_t refused = 0;
  for (const std::string& blob : cases) {
    absl::Status s = a->AddPeer(3, blob);
    ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find("node 3"), std::string::npos) << s;
    EXPECT_FALSE(a->HasPeer(3));
    EXPECT_EQ(a->Stats().invalid_peer_addresses, ++refused);
  }
  // Node 2 first with its good address, then a bad one: the good one stays.
  ASSERT_TRUE(a->AddPeer(2, b->LocalAddress()).ok());
  ASSERT_EQ(a->AddPeer(2, ucx::EncodeAddress(2, bad_version)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(a->HasPeer(2));
  absl::Notification got;
  b->SetControlHandler([&](NodeId from, std::string_view bytes) {
    if (from == 1 && bytes == "hello") got.Notify();
  });
  ASSERT_TRUE(b->AddPeer(1, a->LocalAddress()).ok());
  Completion c;
  a->SendControl(2, "hello", c.done());
  auto st = c.Wait(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_TRUE(st->ok()) << *st;
  EXPECT_TRUE(got.WaitForNotificationWithTimeout(absl::Seconds(30)));
  // Operations to the refused node fail as to any unknown peer.
  Completion unknown;
  a->SendControl(3, "x", unknown.done());
  st = unknown.Wait(30s);
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->code(), absl::StatusCode::kUnavailable) << *st;
}

TEST(UcxAddPeer, UnifiedModeRefused) {
  UcxTransportOptions options;
  options.self = 1;
  options.ucx_config = {{"UNIFIED_MODE", "y"}};
  auto t = CreateUcxTransport(options);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition) << t.status();
  EXPECT_NE(t.status().message().find("UCX_UNIFIED_MODE"), std::string::npos) << t.status();
}

// Writes the seed corpus of tests/fuzz/ucx_address_fuzz.cc when asked:
//   FERRY_WRITE_UCX_ADDRESS_CORPUS=tests/fuzz/corpus/ucx_address
//     ucx_address_test --gtest_filter=UcxAddress.WriteFuzzCorpus
TEST(UcxAddress, WriteFuzzCorpus) {
  const char* dir = std::getenv("FERRY_WRITE_UCX_ADDRESS_CORPUS");
  if (dir == nullptr) GTEST_SKIP() << "set FERRY_WRITE_UCX_ADDRESS_CORPUS=<dir> to write it";
  for (const Variant& v : kVariants) {
    auto t = MakeUcx(1, v);
    ASSERT_NE(t, nullptr);
    std::ofstream(absl::StrCat(dir, "/", v.name, ".bin"), std::ios::binary) << WorkerAddress(*t);
  }
  std::ofstream(absl::StrCat(dir, "/hand_built_v2.bin"), std::ios::binary) << Builder().Build();
}

}  // namespace
}  // namespace ferry::dataplane
