#include "udp.h"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "constants.h"
#include "sys_error.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

namespace weft {
namespace {

constexpr int kSocketBuffer = 7 << 20;  // as wireguard-go asks for
// The kernel's UDP_MAX_SEGMENTS was 64 until 6.x; stay within the older limit, and within one IP
// datagram's 64 KiB for the whole run (the kernel refuses more with EINVAL).
constexpr size_t kMaxGsoSegments = 64;
constexpr size_t kMaxGsoBytes = 65535 - 8 - 40;
constexpr size_t kSegmentControlSpace = CMSG_SPACE(sizeof(uint16_t));
constexpr size_t kGroControlSpace = CMSG_SPACE(sizeof(int));

void growBuffers(int fd) {
  int size = kSocketBuffer;
  // The *FORCE variants ignore rmem_max/wmem_max but need CAP_NET_ADMIN; fall back quietly.
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

// Returns the bound fd or -errno.
int bindSocket(int family, uint16_t port, uint32_t fwmark, uint16_t* boundPort) {
  int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
  if (fd < 0) return -errno;
  int err = 0;
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    int off = 0;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) != 0) err = errno;
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_addr = in6addr_any;
    sin6->sin6_port = htons(port);
    len = sizeof *sin6;
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_ANY);
    sin->sin_port = htons(port);
    len = sizeof *sin;
  }
  if (!err && fwmark != 0 && setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof fwmark) != 0) err = errno;
  if (!err && bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) err = errno;
  if (!err) {
    len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) err = errno;
  }
  if (err) {
    close(fd);
    return -err;
  }
  *boundPort = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  growBuffers(fd);
  return fd;
}

}  // namespace

std::shared_ptr<UdpSocket> UdpSocket::open(uint16_t port, uint32_t fwmark, bool offloads) {
  uint16_t bound = 0;
  int family = AF_INET6;
  int fd = bindSocket(AF_INET6, port, fwmark, &bound);
  // No IPv6 in this namespace (or in the kernel): IPv4 only.
  if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL || fd == -EPROTONOSUPPORT) {
    family = AF_INET;
    fd = bindSocket(AF_INET, port, fwmark, &bound);
  }
  if (fd < 0) throw SysError(-fd, "bind UDP port " + std::to_string(port));
  bool gso = false, gro = false;
  if (offloads) {
    // Probing UDP_SEGMENT with size 0 (the socket default: "no segmentation") tells whether the
    // kernel knows the option; GRO is simply asked for.
    int zero = 0, one = 1;
    gso = setsockopt(fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof zero) == 0;
    gro = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  }
  return std::shared_ptr<UdpSocket>(new UdpSocket(fd, family, bound, gso, gro));
}

UdpSocket::~UdpSocket() { close(fd_); }

int UdpSocket::setMark(uint32_t mark) {
  return setsockopt(fd_, SOL_SOCKET, SO_MARK, &mark, sizeof mark) == 0 ? 0 : errno;
}

int UdpSocket::sendTo(const Endpoint& ep, const uint8_t* data, size_t len) {
  sockaddr_storage ss;
  socklen_t slen = toSockaddr(ep, family_, &ss);
  if (slen == 0) return EAFNOSUPPORT;
  for (;;) {
    if (sendto(fd_, data, len, 0, reinterpret_cast<sockaddr*>(&ss), slen) >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

SendBatch::SendBatch(size_t capacity) : capacity_(capacity) {
  iov_.reserve(capacity);
  messages_.reserve(capacity);
  mmsg_.resize(capacity);
  control_.resize(capacity * kSegmentControlSpace);
}

SendBatch::~SendBatch() = default;

void SendBatch::clear() {
  iov_.clear();
  messages_.clear();
}

bool SendBatch::add(const UdpSocket& sock, const Endpoint& ep, const uint8_t* data, size_t len) {
  if (full()) return false;
  sockaddr_storage ss;
  socklen_t slen = toSockaddr(ep, sock.family(), &ss);
  if (slen == 0) return false;
  iov_.push_back({const_cast<uint8_t*>(data), len});
  if (!messages_.empty() && sock.gso()) {
    Message& m = messages_.back();
    if (!m.closed && len <= m.segmentSize && m.iovCount < kMaxGsoSegments && m.bytes + len <= kMaxGsoBytes &&
        m.addrLen == slen && std::memcmp(&m.addr, &ss, slen) == 0) {
      m.iovCount += 1;
      m.bytes += len;
      m.closed = len < m.segmentSize;
      return true;
    }
  }
  Message m;
  m.addr = ss;
  m.addrLen = slen;
  m.firstIov = iov_.size() - 1;
  m.iovCount = 1;
  m.segmentSize = len;
  m.bytes = len;
  m.closed = false;
  messages_.push_back(m);
  return true;
}

size_t SendBatch::sendSingly(UdpSocket& sock, const Message& m, size_t* failed) {
  size_t sent = 0;
  for (size_t k = 0; k < m.iovCount; ++k) {
    const iovec& v = iov_[m.firstIov + k];
    ssize_t r;
    do {
      r = sendto(sock.fd(), v.iov_base, v.iov_len, 0, reinterpret_cast<const sockaddr*>(&m.addr), m.addrLen);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
      ++*failed;
    else
      ++sent;
  }
  return sent;
}

SendBatch::Result SendBatch::flush(UdpSocket& sock) {
  Result r;
  const size_t count = messages_.size();
  for (size_t i = 0; i < count; ++i) {
    Message& m = messages_[i];
    mmsghdr& mm = mmsg_[i];
    std::memset(&mm, 0, sizeof mm);
    mm.msg_hdr.msg_name = &m.addr;
    mm.msg_hdr.msg_namelen = m.addrLen;
    mm.msg_hdr.msg_iov = &iov_[m.firstIov];
    mm.msg_hdr.msg_iovlen = m.iovCount;
    if (m.iovCount > 1) {
      uint8_t* ctl = control_.data() + i * kSegmentControlSpace;
      std::memset(ctl, 0, kSegmentControlSpace);
      mm.msg_hdr.msg_control = ctl;
      mm.msg_hdr.msg_controllen = kSegmentControlSpace;
      cmsghdr* c = CMSG_FIRSTHDR(&mm.msg_hdr);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t seg = static_cast<uint16_t>(m.segmentSize);
      std::memcpy(CMSG_DATA(c), &seg, sizeof seg);
    }
  }
  size_t i = 0;
  while (i < count) {
    int n = sendmmsg(sock.fd(), &mmsg_[i], static_cast<unsigned>(count - i), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      const Message& m = messages_[i];
      if (m.iovCount > 1 && (errno == EIO || errno == ENOPROTOOPT || errno == EMSGSIZE || errno == EINVAL)) {
        // The kernel refused the run; its datagrams go one at a time (they may still be
        // fragmented on the way). EIO: the run cannot leave as one checksum-offloaded skb (an
        // IPsec route, say) and ENOPROTOOPT: no UDP GSO, so stop asking. EMSGSIZE (EINVAL before
        // 2025 kernels): datagram plus headers exceed this route's path MTU, which concerns one
        // destination only, so GSO stays on for the others.
        if (errno == EIO || errno == ENOPROTOOPT) sock.disableGso();
        r.sent += sendSingly(sock, m, &r.failed);
      } else {
        // Refused (no route, bad address...): skip this message, keep the rest.
        r.failed += m.iovCount;
      }
      ++i;
      continue;
    }
    for (int k = 0; k < n; ++k) {
      size_t datagrams = messages_[i + static_cast<size_t>(k)].iovCount;
      r.sent += datagrams;
      if (datagrams > 1) r.gsoRuns += 1;
    }
    i += static_cast<size_t>(n);
  }
  clear();
  return r;
}

RecvBatch::RecvBatch(size_t count)
    : count_(count),
      stride_(kMaxDatagram + 1),
      buffers_(new uint8_t[count * stride_]),
      msgs_(count),
      iov_(count),
      addrs_(count),
      control_(count * kGroControlSpace) {}

RecvBatch::~RecvBatch() = default;

int RecvBatch::receive(const UdpSocket& sock) {
  for (size_t i = 0; i < count_; ++i) {
    iov_[i].iov_base = data(i);
    iov_[i].iov_len = stride_;
    mmsghdr& m = msgs_[i];
    std::memset(&m, 0, sizeof m);
    m.msg_hdr.msg_name = &addrs_[i];
    m.msg_hdr.msg_namelen = sizeof addrs_[i];
    m.msg_hdr.msg_iov = &iov_[i];
    m.msg_hdr.msg_iovlen = 1;
    m.msg_hdr.msg_control = control_.data() + i * kGroControlSpace;
    m.msg_hdr.msg_controllen = kGroControlSpace;
  }
  for (;;) {
    int n = recvmmsg(sock.fd(), msgs_.data(), static_cast<unsigned>(count_), MSG_DONTWAIT, nullptr);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -errno;
  }
}

size_t RecvBatch::length(size_t i) const { return msgs_[i].msg_len; }

bool RecvBatch::truncated(size_t i) const {
  return (msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || msgs_[i].msg_len > kMaxDatagram;
}

size_t RecvBatch::segmentSize(size_t i) const {
  msghdr* h = const_cast<msghdr*>(&msgs_[i].msg_hdr);
  for (cmsghdr* c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
      int size;
      std::memcpy(&size, CMSG_DATA(c), sizeof size);
      if (size > 0) return static_cast<size_t>(size);
    }
  }
  return msgs_[i].msg_len;
}

}  // namespace weft
