// The TUN interface: opened with IFF_TUN | IFF_NO_PI | IFF_VNET_HDR (layer-3 packets, each read
// and write preceded by a virtio-net header, offload.h), non-blocking. With offloads the kernel may
// hand it TCP super-packets (TSO4/TSO6) and packets with a partial checksum (CSUM). The file descriptor keeps working when the interface moves to another
// namespace; name, MTU and addresses are looked up through a control socket created in the
// namespace where the device was opened.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace weft {

class Tun {
 public:
  /**
   * Opens (creating if needed) the TUN `name` ("" lets the kernel choose) and sets its MTU. With
   * `offloads`, enables TSO4/TSO6 and checksum offload (quietly without them if the kernel refuses).
   */
  Tun(const std::string& name, int mtu, bool offloads);
  ~Tun();
  Tun(const Tun&) = delete;
  Tun& operator=(const Tun&) = delete;

  int fd() const { return fd_; }
  /** TSO super-packets may arrive (TUNSETOFFLOAD succeeded), so coalesced writes are understood. */
  bool offloads() const { return offloads_; }
  const std::string& name() const { return name_; }
  /** Closes the descriptor (the kernel removes a non-persistent interface then). */
  void close();

  /** MTU from the kernel, re-read at most once per second; the last known value otherwise. */
  int mtu();
  /**
   * An IPv6 address of the interface for replies (ICMPv6 errors), preferring a non link-local
   * one; a link-local one only if `linkLocalOk`. Cached for a second. False when there is none.
   */
  bool address6(uint8_t out[16], bool linkLocalOk);

 private:
  void refreshAddresses(int64_t now);

  int fd_ = -1;
  int ctl_ = -1;  // AF_INET datagram socket for interface ioctls, in the creation namespace
  int ifindex_ = 0;
  bool offloads_ = false;
  std::string name_;
  std::atomic<int> mtu_{0};
  std::atomic<int64_t> mtuReadAt_{0};
  std::mutex addrMu_;
  int64_t addrReadAt_ = 0;
  bool has6_ = false, has6ll_ = false;
  uint8_t addr6_[16] = {}, addr6ll_[16] = {};
};

}  // namespace weft
