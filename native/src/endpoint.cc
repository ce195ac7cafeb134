#include "endpoint.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <cstdlib>
#include <cstring>

namespace weft {
namespace {

const uint8_t kV4MappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

}  // namespace

bool parseEndpoint(const std::string& address, uint16_t port, Endpoint* out) {
  Endpoint ep;
  ep.port = port;
  std::string text = address;
  if (text.size() > 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (inet_pton(AF_INET, text.c_str(), ep.addr) == 1) {
    ep.family = 4;
    *out = ep;
    return true;
  }
  std::string zone;
  size_t percent = text.find('%');
  if (percent != std::string::npos) {
    zone = text.substr(percent + 1);
    text = text.substr(0, percent);
    if (zone.empty()) return false;
  }
  if (inet_pton(AF_INET6, text.c_str(), ep.addr) != 1) return false;
  if (std::memcmp(ep.addr, kV4MappedPrefix, 12) == 0 && zone.empty()) {
    std::memmove(ep.addr, ep.addr + 12, 4);
    std::memset(ep.addr + 4, 0, 12);
    ep.family = 4;
    *out = ep;
    return true;
  }
  ep.family = 6;
  if (!zone.empty()) {
    char* end = nullptr;
    unsigned long index = std::strtoul(zone.c_str(), &end, 10);
    if (end && *end == '\0') {
      ep.scope = static_cast<uint32_t>(index);
    } else {
      ep.scope = if_nametoindex(zone.c_str());
      if (ep.scope == 0) return false;
    }
  }
  *out = ep;
  return true;
}

std::string formatAddress(const Endpoint& ep) {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2] = {};
  if (ep.family == 4) {
    inet_ntop(AF_INET, ep.addr, buf, sizeof buf);
    return buf;
  }
  if (ep.family != 6) return "";
  inet_ntop(AF_INET6, ep.addr, buf, sizeof buf);
  std::string text = buf;
  if (ep.scope != 0) {
    char name[IF_NAMESIZE] = {};
    text += '%';
    text += if_indextoname(ep.scope, name) ? std::string(name) : std::to_string(ep.scope);
  }
  return text;
}

socklen_t toSockaddr(const Endpoint& ep, int socketFamily, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  if (socketFamily == AF_INET) {
    if (ep.family != 4) return 0;
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(ep.port);
    std::memcpy(&sin->sin_addr, ep.addr, 4);
    return sizeof *sin;
  }
  if (socketFamily != AF_INET6 || (ep.family != 4 && ep.family != 6)) return 0;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(ep.port);
  if (ep.family == 4) {
    std::memcpy(sin6->sin6_addr.s6_addr, kV4MappedPrefix, 12);
    std::memcpy(sin6->sin6_addr.s6_addr + 12, ep.addr, 4);
  } else {
    std::memcpy(sin6->sin6_addr.s6_addr, ep.addr, 16);
    sin6->sin6_scope_id = ep.scope;
  }
  return sizeof *sin6;
}

Endpoint fromSockaddr(const sockaddr_storage& sa) {
  Endpoint ep;
  if (sa.ss_family == AF_INET) {
    const auto* sin = reinterpret_cast<const sockaddr_in*>(&sa);
    ep.family = 4;
    std::memcpy(ep.addr, &sin->sin_addr, 4);
    ep.port = ntohs(sin->sin_port);
  } else if (sa.ss_family == AF_INET6) {
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    ep.port = ntohs(sin6->sin6_port);
    if (std::memcmp(sin6->sin6_addr.s6_addr, kV4MappedPrefix, 12) == 0) {
      ep.family = 4;
      std::memcpy(ep.addr, sin6->sin6_addr.s6_addr + 12, 4);
    } else {
      ep.family = 6;
      std::memcpy(ep.addr, sin6->sin6_addr.s6_addr, 16);
      ep.scope = sin6->sin6_scope_id;
    }
  }
  return ep;
}

}  // namespace weft
