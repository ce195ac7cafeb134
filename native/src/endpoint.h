// A UDP endpoint (address + port) independent of the socket family, with conversions to and from
// socket addresses and text. IPv4-mapped IPv6 addresses are always stored as plain IPv4, so a
// dual-stack socket reports IPv4 peers as "a.b.c.d".
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace weft {

struct Endpoint {
  uint8_t family = 0;  // 0 (none), 4 or 6
  uint8_t addr[16] = {};
  uint16_t port = 0;
  uint32_t scope = 0;  // IPv6 scope id (link-local), 0 otherwise
};

/** Parses "a.b.c.d", an IPv6 literal, or "fe80::1%eth0" / "fe80::1%3"; false when invalid. */
bool parseEndpoint(const std::string& address, uint16_t port, Endpoint* out);
/** Address text without brackets (IPv6 scope as "%name" or "%index"). */
std::string formatAddress(const Endpoint& ep);
/** Socket address for a socket of `socketFamily` (AF_INET or AF_INET6); 0 when not representable. */
socklen_t toSockaddr(const Endpoint& ep, int socketFamily, sockaddr_storage* out);
Endpoint fromSockaddr(const sockaddr_storage& sa);

}  // namespace weft
