// TAI64N timestamps for handshake initiations (reference §4.7): the responder's replay check
// compares them as byte strings, so the encoding is big-endian throughout.
#include <ctime>

#include "primitives.h"

namespace weft {
namespace crypto {

void tai64nNow(uint8_t out[kTai64nSize]) {
  // The wall clock, not a monotonic one: the responder compares against labels it saw before
  // this process (or this machine) restarted.
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  // TAI64 labels second s of TAI as 2^62 + s; the 10 is the TAI-UTC difference that libtai
  // (and every WireGuard implementation after it) assumes for Unix time.
  uint64_t seconds = 0x400000000000000aULL + static_cast<uint64_t>(ts.tv_sec);
  // Rounding the nanoseconds down to 2^24 ns (about 16.8 ms) keeps the responder from learning
  // this clock precisely, and is still finer than the responder's 1/50 s initiation rate limit.
  uint32_t nanos = static_cast<uint32_t>(ts.tv_nsec) & ~uint32_t{0xffffff};
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(seconds >> (56 - 8 * i));
  for (int i = 0; i < 4; ++i) out[8 + i] = static_cast<uint8_t>(nanos >> (24 - 8 * i));
}

}  // namespace crypto
}  // namespace weft
