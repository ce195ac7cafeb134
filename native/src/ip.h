// Minimal IPv4/IPv6 header reading for the packet path: the destination of outgoing packets, and
// validation (plus the true length) of decrypted incoming ones.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weft {

constexpr size_t kIPv4HeaderMin = 20;
constexpr size_t kIPv6HeaderSize = 40;

inline unsigned ipVersion(const uint8_t* pkt, size_t len) { return len ? pkt[0] >> 4 : 0; }

/** Destination address of an outgoing packet (4 or 16 bytes at *addr); 0 if the header is short. */
inline unsigned ipDestination(const uint8_t* pkt, size_t len, const uint8_t** addr) {
  unsigned v = ipVersion(pkt, len);
  if (v == 4 && len >= kIPv4HeaderMin) {
    *addr = pkt + 16;
    return 4;
  }
  if (v == 6 && len >= kIPv6HeaderSize) {
    *addr = pkt + 24;
    return 6;
  }
  return 0;
}

/**
 * Validates the inner packet of a transport message: version, header length and total/payload
 * length within `len`. Returns the IP length (the rest is padding) and the source address, or 0.
 */
inline size_t ipValidate(const uint8_t* pkt, size_t len, unsigned* family, const uint8_t** source) {
  unsigned v = ipVersion(pkt, len);
  if (v == 4) {
    if (len < kIPv4HeaderMin) return 0;
    size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
    size_t total = (size_t{pkt[2]} << 8) | pkt[3];
    if (ihl < kIPv4HeaderMin || total < ihl || total > len) return 0;
    *family = 4;
    *source = pkt + 12;
    return total;
  }
  if (v == 6) {
    if (len < kIPv6HeaderSize) return 0;
    size_t total = kIPv6HeaderSize + ((size_t{pkt[4]} << 8) | pkt[5]);
    if (total > len) return 0;
    *family = 6;
    *source = pkt + 8;
    return total;
  }
  return 0;
}

}  // namespace weft
