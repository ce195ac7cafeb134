// The TUN interface: opened with IFF_TUN | IFF_NO_PI (layer-3 packets, no packet-information
// header), non-blocking. The file descriptor keeps working when the interface moves to another
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
  /** Opens (creating if needed) the TUN `name` ("" lets the kernel choose) and sets its MTU. */
  Tun(const std::string& name, int mtu);
  ~Tun();
  Tun(const Tun&) = delete;
  Tun& operator=(const Tun&) = delete;

  int fd() const { return fd_; }
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
  std::string name_;
  std::atomic<int> mtu_{0};
  std::atomic<int64_t> mtuReadAt_{0};
  std::mutex addrMu_;
  int64_t addrReadAt_ = 0;
  bool has6_ = false, has6ll_ = false;
  uint8_t addr6_[16] = {}, addr6ll_[16] = {};
};

}  // namespace weft
