// Per-source rate limit on handshake messages while under load (reference §4.4; kernel
// ratelimiter.c, wireguard-go ratelimiter/): a token bucket per source, 20 messages per second
// sustained, bursts of 5. Only senders that proved they receive at their address (valid mac2)
// reach it, so keying by address is meaningful. IPv4 is keyed by address, IPv6 by its /64 (one
// host usually holds a whole /64 and could otherwise rotate addresses for fresh buckets).
//
// Bounded: at most `maxEntries` sources are tracked; a new source beyond that is refused until
// idle ones are forgotten (after a second of silence their bucket is full again, so forgetting
// them changes no decision). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "../endpoint.h"

namespace weft {

class RateLimiter {
 public:
  static constexpr int64_t kPacketCost = 1'000'000'000 / 20;  // ns of credit per message
  static constexpr int64_t kBurst = 5 * kPacketCost;
  static constexpr int64_t kGcInterval = 1'000'000'000;

  explicit RateLimiter(size_t maxEntries = 1 << 16) : maxEntries_(maxEntries) {}
  /** Whether a message from `source` may be processed at `now` (monotonic ns); spends a token. */
  bool allow(const Endpoint& source, int64_t now);
  size_t size();

 private:
  struct Bucket {
    int64_t tokens;
    int64_t last;
  };
  void gc(int64_t now);
  std::mutex mu_;
  std::unordered_map<uint64_t, Bucket> v4_;
  std::unordered_map<uint64_t, Bucket> v6_;
  size_t maxEntries_;
  int64_t lastGc_ = 0;
};

}  // namespace weft
