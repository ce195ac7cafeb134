// Small helpers shared by the Device's source files (device*.cc), not part of its interface.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "constants.h"

namespace weft {

inline size_t paddedLength(size_t len, int mtu) {
  size_t m = mtu > 0 ? static_cast<size_t>(mtu) : SIZE_MAX;
  if (len >= m) return len;
  size_t padded = (len + kPaddingMultiple - 1) & ~(kPaddingMultiple - 1);
  return padded > m ? m : padded;
}

/** Size of the transport message carrying `plainLen` bytes (header, padded text, tag). */
inline size_t transportSize(size_t plainLen, int mtu) {
  return kTransportHeaderSize + paddedLength(plainLen, mtu) + kAeadTagSize;
}

inline void drainEventfd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof v) > 0) {
  }
}

/** Records the first of a series of events: sets `a` to `now` unless it is set already. */
inline void setIfZero(std::atomic<int64_t>& a, int64_t now) {
  int64_t expected = 0;
  a.compare_exchange_strong(expected, now, std::memory_order_relaxed);
}

}  // namespace weft
