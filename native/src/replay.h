// Anti-replay window of RFC 6479 with WireGuard's parameters: a ring of 128 blocks of 64 bits, one
// block of which is redundancy, so the window is (128 - 1) * 64 = 8128 counters behind the newest.
// Same acceptance rule as wireguard-go replay/replay.go and the kernel's counter_validate(): it runs
// after the packet has been authenticated, and a counter at or above the limit is always rejected.
// Not thread-safe by itself: the owner (a keypair) serialises calls.
#pragma once

#include <array>
#include <cstdint>

#include "constants.h"

namespace weft {

class ReplayWindow {
 public:
  static constexpr unsigned kBlockBitsLog = 6;
  static constexpr uint64_t kBlockBits = uint64_t{1} << kBlockBitsLog;
  static constexpr uint64_t kRingBlocks = 128;
  static constexpr uint64_t kWindowSize = (kRingBlocks - 1) * kBlockBits;

  ReplayWindow() { reset(); }

  void reset() {
    last_ = 0;
    ring_.fill(0);
  }

  /** True when `counter` was not seen and is not too old; records it. */
  bool validate(uint64_t counter, uint64_t limit = kRejectAfterMessages) {
    if (counter >= limit) return false;
    uint64_t block = counter >> kBlockBitsLog;
    if (counter > last_) {
      // Moving forward: clear the blocks the window slides over (at most the whole ring).
      uint64_t current = last_ >> kBlockBitsLog;
      uint64_t advance = block - current;
      if (advance > kRingBlocks) advance = kRingBlocks;
      for (uint64_t i = 1; i <= advance; ++i) ring_[(current + i) & (kRingBlocks - 1)] = 0;
      last_ = counter;
    } else if (last_ - counter > kWindowSize) {
      return false;
    }
    uint64_t& word = ring_[block & (kRingBlocks - 1)];
    uint64_t bit = uint64_t{1} << (counter & (kBlockBits - 1));
    if (word & bit) return false;
    word |= bit;
    return true;
  }

 private:
  uint64_t last_;
  std::array<uint64_t, kRingBlocks> ring_;
};

}  // namespace weft
