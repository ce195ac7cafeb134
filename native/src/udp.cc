#include "udp.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "constants.h"
#include "sys_error.h"

namespace weft {
namespace {

constexpr int kSocketBuffer = 7 << 20;  // as wireguard-go asks for

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

std::shared_ptr<UdpSocket> UdpSocket::open(uint16_t port, uint32_t fwmark) {
  uint16_t bound = 0;
  int family = AF_INET6;
  int fd = bindSocket(AF_INET6, port, fwmark, &bound);
  // No IPv6 in this namespace (or in the kernel): IPv4 only.
  if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL || fd == -EPROTONOSUPPORT) {
    family = AF_INET;
    fd = bindSocket(AF_INET, port, fwmark, &bound);
  }
  if (fd < 0) throw SysError(-fd, "bind UDP port " + std::to_string(port));
  return std::shared_ptr<UdpSocket>(new UdpSocket(fd, family, bound));
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

SendBatch::SendBatch(size_t capacity) : capacity_(capacity), msgs_(capacity), iov_(capacity), addrs_(capacity) {}

SendBatch::~SendBatch() = default;

bool SendBatch::add(int socketFamily, const Endpoint& ep, const uint8_t* data, size_t len) {
  if (count_ == capacity_) return false;
  socklen_t slen = toSockaddr(ep, socketFamily, &addrs_[count_]);
  if (slen == 0) return false;
  iov_[count_].iov_base = const_cast<uint8_t*>(data);
  iov_[count_].iov_len = len;
  mmsghdr& m = msgs_[count_];
  std::memset(&m, 0, sizeof m);
  m.msg_hdr.msg_name = &addrs_[count_];
  m.msg_hdr.msg_namelen = slen;
  m.msg_hdr.msg_iov = &iov_[count_];
  m.msg_hdr.msg_iovlen = 1;
  ++count_;
  return true;
}

SendBatch::Result SendBatch::flush(const UdpSocket& sock) {
  Result r;
  size_t i = 0;
  while (i < count_) {
    int n = sendmmsg(sock.fd(), &msgs_[i], static_cast<unsigned>(count_ - i), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      // The datagram at i was refused (no route, bad address...): skip it, keep the rest.
      ++r.failed;
      ++i;
      continue;
    }
    r.sent += static_cast<size_t>(n);
    i += static_cast<size_t>(n);
  }
  count_ = 0;
  return r;
}

RecvBatch::RecvBatch(size_t count)
    : count_(count),
      stride_(kMaxDatagram + 1),
      buffers_(new uint8_t[count * stride_]),
      msgs_(count),
      iov_(count),
      addrs_(count) {}

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

}  // namespace weft
