// The device's UDP socket: dual-stack IPv6 (IPV6_V6ONLY off) when the namespace has IPv6, IPv4
// otherwise; large buffers; optional SO_MARK. Blocking for sends (a full send buffer pushes back on
// the sender instead of dropping); receives use MSG_DONTWAIT after poll(). Shared by pointer so a
// re-bind can swap sockets while other threads finish a send on the old one.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "endpoint.h"

struct mmsghdr;

namespace weft {

class UdpSocket {
 public:
  /** Opens and binds a socket on `port` (0: any free port). Throws SysError. */
  static std::shared_ptr<UdpSocket> open(uint16_t port, uint32_t fwmark);
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  int fd() const { return fd_; }
  int family() const { return family_; }
  uint16_t port() const { return port_; }
  /** SO_MARK; returns 0 or an errno. */
  int setMark(uint32_t mark);
  /** One datagram; returns 0 or an errno (EAFNOSUPPORT for an IPv6 endpoint on an IPv4 socket). */
  int sendTo(const Endpoint& ep, const uint8_t* data, size_t len);

 private:
  UdpSocket(int fd, int family, uint16_t port) : fd_(fd), family_(family), port_(port) {}
  int fd_;
  int family_;
  uint16_t port_;
};

/** Datagrams to several endpoints sent with sendmmsg(); the data stays owned by the caller. */
class SendBatch {
 public:
  explicit SendBatch(size_t capacity);
  ~SendBatch();
  size_t size() const { return count_; }
  bool full() const { return count_ == capacity_; }
  /** False when the endpoint cannot be expressed for `socketFamily` (not queued). */
  bool add(int socketFamily, const Endpoint& ep, const uint8_t* data, size_t len);
  struct Result {
    size_t sent = 0;
    size_t failed = 0;
  };
  /** Sends everything queued (skipping datagrams the kernel refuses) and empties the batch. */
  Result flush(const UdpSocket& sock);
  void clear() { count_ = 0; }

 private:
  size_t capacity_;
  size_t count_ = 0;
  std::vector<mmsghdr> msgs_;
  std::vector<struct iovec> iov_;
  std::vector<sockaddr_storage> addrs_;
};

/** recvmmsg() buffers: `count` datagrams of up to kMaxDatagram bytes each. */
class RecvBatch {
 public:
  explicit RecvBatch(size_t count);
  ~RecvBatch();
  /** Receives without blocking; returns the number of datagrams, 0 if none, -errno on error. */
  int receive(const UdpSocket& sock);
  uint8_t* data(size_t i) { return buffers_.get() + i * stride_; }
  size_t length(size_t i) const;
  bool truncated(size_t i) const;
  Endpoint source(size_t i) const { return fromSockaddr(addrs_[i]); }

 private:
  size_t count_;
  size_t stride_;
  std::unique_ptr<uint8_t[]> buffers_;  // not zero-filled: pages are committed only when used
  std::vector<mmsghdr> msgs_;
  std::vector<struct iovec> iov_;
  std::vector<sockaddr_storage> addrs_;
};

}  // namespace weft
