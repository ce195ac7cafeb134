#include "icmp.h"

#include <algorithm>
#include <cstring>

#include "ip.h"

namespace weft {
namespace {

constexpr size_t kIPv4ReplyMax = 576;  // RFC 1812 4.3.2.3: quote as much as fits in 576 bytes
constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoIcmp6 = 58;

uint32_t sumBytes(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t{p[i]} << 8) | p[i + 1];
  if (n & 1) sum += uint32_t{p[n - 1]} << 8;
  return sum;
}

uint16_t foldChecksum(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum & 0xffff);
}

void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

bool badIPv4Source(const uint8_t* a) {
  // 0.0.0.0/8 (unspecified), 127.0.0.0/8, 224.0.0.0/4 multicast, 240.0.0.0/4 incl. broadcast.
  return a[0] == 0 || a[0] == 127 || a[0] >= 224;
}

bool mayAnswer4(const uint8_t* pkt, size_t len) {
  if (len < kIPv4HeaderMin) return false;
  size_t ihl = size_t{pkt[0] & 0x0fu} * 4;
  if (ihl < kIPv4HeaderMin || ihl > len) return false;
  if ((((pkt[6] & 0x1f) << 8) | pkt[7]) != 0) return false;  // not the first fragment
  if (badIPv4Source(pkt + 12) || pkt[16] >= 224 || pkt[16] == 0) return false;
  if (pkt[9] == kProtoIcmp) {
    if (len < ihl + 1) return false;
    uint8_t type = pkt[ihl];
    // Errors (destination unreachable, source quench, redirect, time exceeded, parameter problem)
    // and unknown types are never answered (RFC 1122 3.2.2).
    if (type > 18 || type == 3 || type == 4 || type == 5 || type == 11 || type == 12) return false;
  }
  return true;
}

bool mayAnswer6(const uint8_t* pkt, size_t len) {
  if (len < kIPv6HeaderSize) return false;
  const uint8_t* src = pkt + 8;
  const uint8_t* dst = pkt + 24;
  static const uint8_t zero[16] = {};
  static const uint8_t loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  if (std::memcmp(src, zero, 16) == 0 || std::memcmp(src, loopback, 16) == 0 || src[0] == 0xff) return false;
  if (dst[0] == 0xff) return false;
  uint8_t next = pkt[6];
  size_t off = kIPv6HeaderSize;
  for (int hops = 0; hops < 8; ++hops) {
    switch (next) {
      case 0:    // hop-by-hop options
      case 43:   // routing
      case 60:   // destination options
        if (off + 2 > len) return false;
        next = pkt[off];
        off += (size_t{pkt[off + 1]} + 1) * 8;
        break;
      case 44:  // fragment
        if (off + 8 > len) return false;
        if ((((pkt[off + 2] << 8) | pkt[off + 3]) & 0xfff8) != 0) return false;
        next = pkt[off];
        off += 8;
        break;
      case kProtoIcmp6:
        if (off + 1 > len) return false;
        return pkt[off] >= 128;  // informational messages only
      default:
        return true;
    }
  }
  return false;
}

}  // namespace

bool mayAnswerWithIcmp(const uint8_t* pkt, size_t len) {
  unsigned v = ipVersion(pkt, len);
  return v == 4 ? mayAnswer4(pkt, len) : v == 6 ? mayAnswer6(pkt, len) : false;
}

size_t buildUnreachable(const uint8_t* pkt, size_t len, const uint8_t* source, uint8_t* out) {
  if (!mayAnswerWithIcmp(pkt, len)) return 0;
  if (ipVersion(pkt, len) == 4) {
    size_t total = (size_t{pkt[2]} << 8) | pkt[3];
    size_t quote = std::min({len, total < kIPv4HeaderMin ? len : total, kIPv4ReplyMax - 28});
    size_t replyLen = 28 + quote;
    std::memset(out, 0, 28);
    out[0] = 0x45;
    out[1] = 0xc0;  // precedence: internetwork control, as the kernel uses for ICMP errors
    put16(out + 2, static_cast<uint16_t>(replyLen));
    out[8] = 64;
    out[9] = kProtoIcmp;
    std::memcpy(out + 12, source ? source : pkt + 16, 4);
    std::memcpy(out + 16, pkt + 12, 4);
    put16(out + 10, foldChecksum(sumBytes(out, 20)));
    uint8_t* icmp = out + 20;
    icmp[0] = 3;  // destination unreachable
    icmp[1] = 1;  // host unreachable
    std::memcpy(icmp + 8, pkt, quote);
    put16(icmp + 2, foldChecksum(sumBytes(icmp, 8 + quote)));
    return replyLen;
  }
  size_t total = kIPv6HeaderSize + ((size_t{pkt[4]} << 8) | pkt[5]);
  size_t quote = std::min({len, total, kIcmpReplyMax - kIPv6HeaderSize - 8});
  size_t payload = 8 + quote;
  std::memset(out, 0, kIPv6HeaderSize + 8);
  out[0] = 0x60;
  put16(out + 4, static_cast<uint16_t>(payload));
  out[6] = kProtoIcmp6;
  out[7] = 64;
  std::memcpy(out + 8, source ? source : pkt + 24, 16);
  std::memcpy(out + 24, pkt + 8, 16);
  uint8_t* icmp = out + kIPv6HeaderSize;
  icmp[0] = 1;  // destination unreachable
  icmp[1] = 3;  // address unreachable
  std::memcpy(icmp + 8, pkt, quote);
  // Pseudo-header: source, destination, upper-layer length, next header.
  uint32_t sum = sumBytes(out + 8, 32);
  sum += static_cast<uint32_t>(payload >> 16) + static_cast<uint32_t>(payload & 0xffff);
  sum += kProtoIcmp6;
  put16(icmp + 2, foldChecksum(sumBytes(icmp, payload, sum)));
  return kIPv6HeaderSize + payload;
}

bool IcmpRateLimiter::allow(int64_t nowNs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (last_ != 0) tokens_ = std::min(rate_, tokens_ + rate_ * static_cast<double>(nowNs - last_) / 1e9);
  last_ = nowNs;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace weft
