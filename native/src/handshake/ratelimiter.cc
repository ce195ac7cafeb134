#include "ratelimiter.h"

#include <algorithm>

namespace weft {

bool RateLimiter::allow(const Endpoint& source, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (lastGc_ == 0) lastGc_ = now;
  if (now - lastGc_ >= kGcInterval) gc(now);
  uint64_t key = 0;
  size_t n = source.family == 6 ? 8 : 4;  // IPv6: the /64
  for (size_t i = 0; i < n; ++i) key = (key << 8) | source.addr[i];
  auto& table = source.family == 6 ? v6_ : v4_;
  auto it = table.find(key);
  if (it == table.end()) {
    if (v4_.size() + v6_.size() >= maxEntries_) return false;
    // A new source starts with a full bucket and spends one token on this message.
    table.emplace(key, Bucket{kBurst - kPacketCost, now});
    return true;
  }
  Bucket& b = it->second;
  // A clock that steps back never refills negative time.
  b.tokens = std::min(kBurst, b.tokens + std::max<int64_t>(0, now - b.last));
  b.last = now;
  if (b.tokens < kPacketCost) return false;
  b.tokens -= kPacketCost;
  return true;
}

void RateLimiter::gc(int64_t now) {
  lastGc_ = now;
  for (auto* table : {&v4_, &v6_}) {
    for (auto it = table->begin(); it != table->end();) {
      if (now - it->second.last >= kGcInterval)
        it = table->erase(it);
      else
        ++it;
    }
  }
}

size_t RateLimiter::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return v4_.size() + v6_.size();
}

}  // namespace weft
