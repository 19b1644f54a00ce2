#include "dataplane/sidecar/link_estimator.h"

#include "gtest/gtest.h"

namespace ferry::dataplane {
namespace {

constexpr uint64_t kMiB = 1 << 20;

PullSample Big(double seconds, uint64_t sender = 1, double first_chunk_s = 0) {
  return PullSample{16 * kMiB, seconds, first_chunk_s, static_cast<uint32_t>(kMiB), sender, true};
}

TEST(LinkEstimatorTest, NothingMeasuredReadsZero) {
  LinkEstimator e;
  EXPECT_EQ(e.bandwidth_bps(), 0);
  EXPECT_EQ(e.latency_s(), 0);
}

TEST(LinkEstimatorTest, BandwidthIsAnEwmaOfLargePullsOnly) {
  LinkEstimator e;
  e.Record(Big(1.0));   // 16 MiB/s, taken as is
  EXPECT_DOUBLE_EQ(e.bandwidth_bps(), 16.0 * kMiB);
  e.Record(Big(0.5));   // 32 MiB/s: 0.7 * 16 + 0.3 * 32
  EXPECT_DOUBLE_EQ(e.bandwidth_bps(), (0.7 * 16 + 0.3 * 32) * kMiB);
  // A pull under 8 MiB says nothing about the link.
  e.Record(PullSample{4 * kMiB, 100.0, 0, static_cast<uint32_t>(kMiB), 1, true});
  EXPECT_DOUBLE_EQ(e.bandwidth_bps(), (0.7 * 16 + 0.3 * 32) * kMiB);
  // Nor does one that took no time.
  e.Record(Big(0));
  EXPECT_DOUBLE_EQ(e.bandwidth_bps(), (0.7 * 16 + 0.3 * 32) * kMiB);
}

TEST(LinkEstimatorTest, LatencyIsTheMinimumOfTheLastSamplesNotAnEwma) {
  LinkEstimator e;
  // No bandwidth yet: no latency sample (the chunk's own transfer time is unknown).
  PullSample s{1000, 0.01, 0.002, 1000, 7, true};
  e.Record(s);
  EXPECT_EQ(e.latency_s(), 0);
  e.Record(Big(1.0, /*sender=*/7, /*first_chunk_s=*/0.5));   // 16 MiB/s; and the first pull from 7
  EXPECT_EQ(e.latency_s(), 0) << "the first pull from a sender pays for connection setup";
  const double bw = e.bandwidth_bps();
  // From now on: sample = first_chunk - min(chunk, bytes) / bw.
  auto sample = [&](double first_chunk_s) { return PullSample{1000, 0.01, first_chunk_s, 1000, 7, true}; };
  e.Record(sample(0.003));
  EXPECT_DOUBLE_EQ(e.latency_s(), 0.003 - 1000 / bw);
  e.Record(sample(0.001));
  EXPECT_DOUBLE_EQ(e.latency_s(), 0.001 - 1000 / bw);
  e.Record(sample(0.009));   // a busy sender: the minimum ignores it (an EWMA would not)
  EXPECT_DOUBLE_EQ(e.latency_s(), 0.001 - 1000 / bw);
  // After 16 newer samples the small one has aged out.
  for (size_t i = 0; i < LinkEstimator::kLatencySamples; ++i) e.Record(sample(0.005));
  EXPECT_DOUBLE_EQ(e.latency_s(), 0.005 - 1000 / bw);
  // Floor of 10 us.
  e.Record(sample(1e-9));
  EXPECT_DOUBLE_EQ(e.latency_s(), LinkEstimator::kMinLatencyS);
}

TEST(LinkEstimatorTest, LatencyIgnoresPartialSendersAndFirstPullsPerSender) {
  LinkEstimator e;
  e.Record(Big(1.0, 1));
  e.Record(PullSample{1000, 0.01, 0.002, 1000, 1, /*sender_complete=*/false});
  EXPECT_EQ(e.latency_s(), 0) << "from a partial copy the first chunk also waits for upstream";
  e.Record(PullSample{1000, 0.01, 0.002, 1000, 2, true});   // first pull from 2
  EXPECT_EQ(e.latency_s(), 0);
  e.Record(PullSample{1000, 0.01, 0.002, 1000, 2, true});
  EXPECT_GT(e.latency_s(), 0);
}

}  // namespace
}  // namespace ferry::dataplane
