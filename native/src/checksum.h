// The Internet checksum (RFC 1071) for the offload code. Sums are kept in the "native word"
// domain: 16-bit fields are loaded with memcpy in host order, which RFC 1071 §2(B) allows (the
// one's-complement sum is byte-order independent up to a final swap), and a folded result is stored
// back with memcpy, so no byte swapping happens anywhere. This lets the loop add 64-bit words.
#pragma once

#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace weft {

/** One's-complement partial sum of `len` bytes added to `acc` (unfolded, 64-bit). */
inline uint64_t checksumAdd(const uint8_t* p, size_t len, uint64_t acc) {
  // Four independent accumulators of 32-bit halves never overflow below 2^32 words.
  uint64_t a = acc, b = 0;
  while (len >= 16) {
    uint32_t w[4];
    std::memcpy(w, p, 16);
    a += uint64_t{w[0]} + w[1];
    b += uint64_t{w[2]} + w[3];
    p += 16;
    len -= 16;
  }
  a += b;
  if (len >= 8) {
    uint32_t w[2];
    std::memcpy(w, p, 8);
    a += uint64_t{w[0]} + w[1];
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    a += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    a += w;
    p += 2;
    len -= 2;
  }
  if (len == 1) {
    // The odd last byte is the first byte of a zero-padded 16-bit word.
    uint16_t w = 0;
    std::memcpy(&w, p, 1);
    a += w;
  }
  return a;
}

/** A network-order 16-bit value as it appears in the native-word domain. */
inline uint64_t checksumWord(uint16_t hostValue) { return htons(hostValue); }

/** Folds a partial sum to 16 bits (not complemented); store it with storeChecksum. */
inline uint16_t checksumFold(uint64_t acc) {
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  acc = (acc & 0xffffu) + (acc >> 16);
  acc = (acc & 0xffffu) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

inline void storeChecksum(uint8_t* field, uint16_t folded) { std::memcpy(field, &folded, 2); }

/** The TCP/UDP pseudo-header sum: addresses (4 or 16 bytes each), protocol, L4 length. */
inline uint64_t pseudoHeaderSum(const uint8_t* src, const uint8_t* dst, size_t addrLen, uint8_t protocol,
                                uint32_t l4Length) {
  uint64_t acc = checksumAdd(src, addrLen, 0);
  acc = checksumAdd(dst, addrLen, acc);
  acc += checksumWord(protocol);
  acc += checksumWord(static_cast<uint16_t>(l4Length >> 16));
  acc += checksumWord(static_cast<uint16_t>(l4Length & 0xffff));
  return acc;
}

/** Recomputes an IPv4 header checksum in place. */
inline void fillIpv4HeaderChecksum(uint8_t* ip, size_t ihl) {
  ip[10] = ip[11] = 0;
  storeChecksum(ip + 10, static_cast<uint16_t>(~checksumFold(checksumAdd(ip, ihl, 0))));
}

}  // namespace weft
