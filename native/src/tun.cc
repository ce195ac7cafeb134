#include "tun.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "clock.h"
#include "constants.h"
#include "sys_error.h"

namespace weft {
namespace {

void setIfName(ifreq* ifr, const char* name) {
  std::memset(ifr->ifr_name, 0, IFNAMSIZ);
  std::memcpy(ifr->ifr_name, name, strnlen(name, IFNAMSIZ - 1));
}

}  // namespace

Tun::Tun(const std::string& name, int mtu, bool offloads) {
  if (name.size() >= IFNAMSIZ) throw UsageError("EINVAL", "interface name too long: " + name);
  if (mtu < 576 || mtu > 65535) throw UsageError("EINVAL", "MTU out of range: " + std::to_string(mtu));
  fd_ = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) throw SysError(errno, "open /dev/net/tun");
  ifreq ifr{};
  // The virtio-net header is always on, so reads and writes have one format with or without
  // offloads (without them the header is all zero).
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
  setIfName(&ifr, name.c_str());
  if (ioctl(fd_, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    ::close(fd_);
    throw SysError(err, "TUNSETIFF " + name);
  }
  name_ = ifr.ifr_name;
  // TSO needs CSUM; ECN-marked super-packets (TSO_ECN) are left to the kernel to cut, which keeps
  // CWR handling where it belongs. The setting also means coalesced writes are accepted.
  if (offloads && ioctl(fd_, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) == 0) offloads_ = true;
  ctl_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (ctl_ < 0) {
    int err = errno;
    ::close(fd_);
    throw SysError(err, "socket");
  }
  ifreq q{};
  setIfName(&q, name_.c_str());
  if (ioctl(ctl_, SIOCGIFINDEX, &q) == 0) ifindex_ = q.ifr_ifindex;
  q.ifr_mtu = mtu;
  if (ioctl(ctl_, SIOCSIFMTU, &q) < 0) {
    int err = errno;
    ::close(ctl_);
    ::close(fd_);
    throw SysError(err, "set MTU of " + name_);
  }
  mtu_ = mtu;
  mtuReadAt_ = monotonicNs();
}

Tun::~Tun() {
  close();
  if (ctl_ >= 0) ::close(ctl_);
}

void Tun::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

int Tun::mtu() {
  int64_t now = monotonicNs();
  if (now - mtuReadAt_.load(std::memory_order_relaxed) < kSecond) return mtu_.load(std::memory_order_relaxed);
  mtuReadAt_.store(now, std::memory_order_relaxed);
  // Look the interface up by index so a renamed interface still resolves; an interface that left
  // this namespace keeps its last known MTU.
  ifreq q{};
  char name[IF_NAMESIZE] = {};
  if (ifindex_ != 0 && if_indextoname(static_cast<unsigned>(ifindex_), name)) {
    setIfName(&q, name);
    if (ioctl(ctl_, SIOCGIFMTU, &q) == 0 && q.ifr_mtu > 0) mtu_.store(q.ifr_mtu, std::memory_order_relaxed);
  }
  return mtu_.load(std::memory_order_relaxed);
}

void Tun::refreshAddresses(int64_t now) {
  if (addrReadAt_ != 0 && now - addrReadAt_ < kSecond) return;
  addrReadAt_ = now;
  has6_ = has6ll_ = false;
  char name[IF_NAMESIZE] = {};
  if (ifindex_ == 0 || !if_indextoname(static_cast<unsigned>(ifindex_), name)) return;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return;
  for (ifaddrs* it = list; it; it = it->ifa_next) {
    if (!it->ifa_addr || std::strcmp(it->ifa_name, name) != 0) continue;
    if (it->ifa_addr->sa_family == AF_INET6) {
      const uint8_t* a = reinterpret_cast<sockaddr_in6*>(it->ifa_addr)->sin6_addr.s6_addr;
      bool linkLocal = a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
      if (linkLocal && !has6ll_) {
        std::memcpy(addr6ll_, a, 16);
        has6ll_ = true;
      } else if (!linkLocal && !has6_) {
        std::memcpy(addr6_, a, 16);
        has6_ = true;
      }
    }
  }
  freeifaddrs(list);
}

bool Tun::address6(uint8_t out[16], bool linkLocalOk) {
  std::lock_guard<std::mutex> lock(addrMu_);
  refreshAddresses(monotonicNs());
  if (has6_) {
    std::memcpy(out, addr6_, 16);
    return true;
  }
  if (linkLocalOk && has6ll_) {
    std::memcpy(out, addr6ll_, 16);
    return true;
  }
  return false;
}

}  // namespace weft
