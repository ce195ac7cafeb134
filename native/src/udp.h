// The device's UDP socket: dual-stack IPv6 (IPV6_V6ONLY off) when the namespace has IPv6, IPv4
// otherwise; large buffers; optional SO_MARK; UDP GSO/GRO when asked and available. Blocking for
// sends (a full send buffer pushes back on the sender instead of dropping); receives use
// MSG_DONTWAIT after poll(). Shared by pointer so a re-bind can swap sockets while other threads
// finish a send on the old one.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "endpoint.h"

struct mmsghdr;

namespace weft {

class UdpSocket {
 public:
  /**
   * Opens and binds a socket on `port` (0: any free port). With `offloads`, asks for UDP GRO on
   * receive and allows UDP GSO on send where the kernel has them. Throws SysError.
   */
  static std::shared_ptr<UdpSocket> open(uint16_t port, uint32_t fwmark, bool offloads);
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  int fd() const { return fd_; }
  int family() const { return family_; }
  uint16_t port() const { return port_; }
  /** Sends may carry several equal-sized datagrams in one UDP_SEGMENT message. */
  bool gso() const { return gso_.load(std::memory_order_relaxed); }
  /** The kernel refused a segmented send (EIO over an IPsec route, say): send datagrams singly. */
  void disableGso() { gso_.store(false, std::memory_order_relaxed); }
  /** Receives may return several datagrams merged (UDP_GRO control message gives their size). */
  bool gro() const { return gro_; }
  /** SO_MARK; returns 0 or an errno. */
  int setMark(uint32_t mark);
  /** One datagram; returns 0 or an errno (EAFNOSUPPORT for an IPv6 endpoint on an IPv4 socket). */
  int sendTo(const Endpoint& ep, const uint8_t* data, size_t len);

 private:
  UdpSocket(int fd, int family, uint16_t port, bool gso, bool gro)
      : fd_(fd), family_(family), port_(port), gso_(gso), gro_(gro) {}
  int fd_;
  int family_;
  uint16_t port_;
  std::atomic<bool> gso_;
  bool gro_;
};

/**
 * Datagrams to send with one sendmmsg(); the data stays owned by the caller until flush().
 * With GSO, consecutive datagrams to the same endpoint of one size (the last of a run may be
 * shorter) travel as one UDP_SEGMENT message of up to kMaxGsoSegments datagrams, which the kernel
 * (or the veth/NIC) cuts apart: one trip through the stack for ~64 KiB.
 */
class SendBatch {
 public:
  explicit SendBatch(size_t capacity);
  ~SendBatch();
  /** Datagrams queued. */
  size_t size() const { return iov_.size(); }
  bool full() const { return iov_.size() == capacity_; }
  /** False when the endpoint cannot be expressed for the socket's family, or the batch is full. */
  bool add(const UdpSocket& sock, const Endpoint& ep, const uint8_t* data, size_t len);
  struct Result {
    size_t sent = 0;     // datagrams
    size_t failed = 0;   // datagrams
    size_t gsoRuns = 0;  // messages that carried more than one datagram
  };
  /** Sends everything queued (skipping datagrams the kernel refuses) and empties the batch. */
  Result flush(UdpSocket& sock);
  void clear();

 private:
  struct Message {
    sockaddr_storage addr;
    socklen_t addrLen;
    size_t firstIov;
    size_t iovCount;
    size_t segmentSize;
    size_t bytes;
    bool closed;  // a shorter datagram ended the run
  };
  size_t sendSingly(UdpSocket& sock, const Message& m, size_t* failed);
  size_t capacity_;
  std::vector<struct iovec> iov_;
  std::vector<Message> messages_;
  std::vector<mmsghdr> mmsg_;
  std::vector<uint8_t> control_;
};

/** recvmmsg() buffers: `count` messages of up to kMaxDatagram bytes (several datagrams with GRO). */
class RecvBatch {
 public:
  explicit RecvBatch(size_t count);
  ~RecvBatch();
  /** Receives without blocking; returns the number of messages, 0 if none, -errno on error. */
  int receive(const UdpSocket& sock);
  uint8_t* data(size_t i) { return buffers_.get() + i * stride_; }
  size_t length(size_t i) const;
  bool truncated(size_t i) const;
  /** Size of each datagram merged into message i (the last may be shorter); its length if not merged. */
  size_t segmentSize(size_t i) const;
  Endpoint source(size_t i) const { return fromSockaddr(addrs_[i]); }

 private:
  size_t count_;
  size_t stride_;
  std::unique_ptr<uint8_t[]> buffers_;  // not zero-filled: pages are committed only when used
  std::vector<mmsghdr> msgs_;
  std::vector<struct iovec> iov_;
  std::vector<sockaddr_storage> addrs_;
  std::vector<uint8_t> control_;
};

}  // namespace weft
