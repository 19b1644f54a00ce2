// Copies that bypass the cache on the way to their destination (non-temporal stores).
//
// Why: over TCP with UCP_ERR_HANDLING_MODE_PEER, UCX 1.13 moves a rendezvous as AM fragments
// and copies each one from its receive buffer into the destination. A pull lands in arena
// memory no one has touched for a while, so an ordinary copy first reads every destination
// line into the cache (read-for-ownership) and then writes it back: measured here, 16 MiB
// in 512 KiB pieces into cold memory takes 1.6 ms with memcpy and 0.7 ms with streaming
// stores. With UcxTransportOptions::ReceiveCopy::kStreaming (ferryd --ucx-receive-copy
// streaming), ferry gives UCX a receive datatype whose unpack is this copy. It is opt-in:
// end to end on loopback it halved the receiver's copy time yet made pulls slower
// (docs/benchmarks.md).
#pragma once

#include <cstddef>

namespace ferry::dataplane::ucx {

// Copies n bytes from src to dst (they must not overlap). The bulk goes with non-temporal
// stores where the CPU has them (x86-64: SSE2, always); the unaligned head and tail, and
// every byte on other CPUs, with memcpy. All stores are visible to other threads when it
// returns (store fence).
void StreamingCopy(void* dst, const void* src, size_t n);

}  // namespace ferry::dataplane::ucx
