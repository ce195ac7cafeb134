// ICMP destination-unreachable replies for packets the device cannot route (no peer owns the
// destination), written back into the TUN as the kernel's WireGuard does with icmp_ndo_send():
// IPv4 type 3 code 1 (host unreachable), IPv6 type 1 code 3 (address unreachable). Never in answer
// to an ICMP error, a non-first fragment, or a packet from/to a multicast, broadcast or unspecified
// address; rate limited. The device picks the source address (see Device::answerUnreachable).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

namespace weft {

/** Largest reply buildUnreachable() writes (the IPv6 minimum MTU). */
constexpr size_t kIcmpReplyMax = 1280;

/**
 * Builds the reply to `pkt` (an IP packet read from the TUN) into `out` (kIcmpReplyMax bytes) with
 * source address `source` (4 or 16 bytes of the packet's family; nullptr = the packet's own
 * destination). Returns the reply length, or 0 when no reply may be sent.
 */
size_t buildUnreachable(const uint8_t* pkt, size_t len, const uint8_t* source, uint8_t* out);

/** Whether buildUnreachable() would answer this packet (checked before looking up a source). */
bool mayAnswerWithIcmp(const uint8_t* pkt, size_t len);

/** Token bucket: `rate` replies per second with a burst of `rate`. Thread-safe. */
class IcmpRateLimiter {
 public:
  explicit IcmpRateLimiter(double rate) : rate_(rate), tokens_(rate) {}
  bool allow(int64_t nowNs);

 private:
  std::mutex mu_;
  double rate_;
  double tokens_;
  int64_t last_ = 0;
};

}  // namespace weft
