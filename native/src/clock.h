// The monotonic clock of the packet path. NativeDevice.now() and every timestamp of peerState()
// come from here, so JavaScript timers and native figures compare directly.
#pragma once

#include <time.h>

#include <cstdint>

namespace weft {

inline int64_t monotonicNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline double nsToMs(int64_t ns) { return static_cast<double>(ns) / 1e6; }

}  // namespace weft
