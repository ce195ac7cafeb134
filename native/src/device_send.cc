// The TUN thread of a Device: read (a TCP super-packet with offloads) -> split into segments ->
// destination lookup -> peer -> current keypair ? reserve a nonce, seal with the batch, sendmmsg
// (UDP GSO runs) : stage and ask for a handshake; no peer -> ICMP unreachable back into the TUN.
#include <poll.h>
#include <unistd.h>

#include <cstring>

#include "clock.h"
#include "constants.h"
#include "device.h"
#include "device_internal.h"
#include "ip.h"

namespace weft {
namespace {

// TUN reads per wake-up before the batch is sent: with TSO each read can be ~45 segments.
constexpr size_t kTunReads = 16;
// Encrypted datagrams waiting for sendmmsg: each sits at its own offset with room for the
// transport header before and padding + tag after; sent when either limit would be passed.
constexpr size_t kSendArena = size_t{1} << 20;
constexpr size_t kSendBatch = 1024;  // iovecs per sendmmsg (UIO_MAXIOV)

bool tunGoneErrno(int err) {
  return err == EBADFD || err == EIO || err == ENXIO || err == EBADF || err == ENODEV || err == EINVAL ||
         err == EFAULT;
}

}  // namespace

void Device::tunLoop() {
  // Not zero-filled: only the pages that packets touch get committed.
  std::unique_ptr<uint8_t[]> readBuf(new uint8_t[kVnetHdrSize + kMaxIpPacket]);
  std::unique_ptr<uint8_t[]> arena(new uint8_t[kSendArena]);
  SendBatch batch(kSendBatch);
  std::vector<SealJob> seals;
  seals.reserve(kSendBatch);
  GsoSplitter split;
  pollfd fds[2] = {{tun_->fd(), POLLIN, 0}, {wakeTun_, POLLIN, 0}};
  while (!stopping_) {
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      deviceGone(std::string("TUN poll: ") + std::strerror(errno));
      break;
    }
    if (fds[1].revents) drainEventfd(wakeTun_);
    if (stopping_) break;
    if (!fds[0].revents) continue;
    std::shared_ptr<UdpSocket> sock = socket();
    int mtu = tun_->mtu();
    int64_t now = monotonicNs();
    size_t used = 0;
    auto send = [&] {
      // Every datagram of the batch is sealed (in parallel) before any is sent, in batch order.
      sealPool_.run(seals.size(), [&](size_t k) {
        const SealJob& j = seals[k];
        sealTransport(*j.keypair, j.nonce, j.buf, j.plainLen, j.mtu);
      });
      seals.clear();
      if (sock && batch.size() > 0) {
        SendBatch::Result res = batch.flush(*sock);
        Counters::add(counters_.udpTxPackets, res.sent);
        Counters::add(counters_.udpTxErrors, res.failed);
        Counters::add(counters_.udpTxGsoRuns, res.gsoRuns);
      }
      batch.clear();
      used = 0;
    };
    bool gone = false;
    int goneErr = 0;
    for (size_t i = 0; i < kTunReads; ++i) {
      ssize_t n = read(tun_->fd(), readBuf.get(), kVnetHdrSize + kMaxIpPacket);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          // Readable with an error condition but nothing to read: the interface went away.
          if (i == 0 && (fds[0].revents & (POLLERR | POLLHUP | POLLNVAL))) {
            gone = true;
            goneErr = EBADFD;
          }
          break;
        }
        if (tunGoneErrno(errno)) {
          gone = true;
          goneErr = errno;
        }
        break;
      }
      if (n == 0) break;
      if (static_cast<size_t>(n) <= kVnetHdrSize ||
          !split.init(readVnetHeader(readBuf.get()), readBuf.get() + kVnetHdrSize, static_cast<size_t>(n) - kVnetHdrSize)) {
        Counters::add(counters_.dropMalformed);
        continue;
      }
      if (split.count() > 1) Counters::add(counters_.tunRxSuperPackets);
      const size_t room = kTransportHeaderSize + split.maxSegmentLength() + kPaddingMultiple + kAeadTagSize;
      for (size_t s = 0; s < split.count(); ++s) {
        if (used + room > kSendArena || batch.full()) send();
        uint8_t* slot = arena.get() + used;
        size_t len = split.write(s, slot + kTransportHeaderSize);
        Counters::add(counters_.tunRxPackets);
        size_t sent = routeFromTun(slot, len, batch, seals, sock.get(), mtu, now);
        used += (sent + 15) & ~size_t{15};
      }
    }
    send();
    if (gone) {
      deviceGone(std::string("TUN read: ") + std::strerror(goneErr));
      break;
    }
  }
}

size_t Device::routeFromTun(uint8_t* slot, size_t len, SendBatch& batch, std::vector<SealJob>& seals,
                            const UdpSocket* sock, int mtu, int64_t now) {
  uint8_t* pkt = slot + kTransportHeaderSize;
  const uint8_t* dst = nullptr;
  unsigned family = ipDestination(pkt, len, &dst);
  if (family == 0) {
    Counters::add(counters_.dropMalformed);
    return 0;
  }
  std::shared_ptr<Peer> peer;
  {
    std::shared_lock<std::shared_mutex> lock(tableMu_);
    std::optional<PeerId> id = family == 4 ? allowedIps_.lookup4(dst) : allowedIps_.lookup6(dst);
    if (id) {
      auto it = peers_.find(*id);
      if (it != peers_.end()) peer = it->second;
    }
  }
  if (!peer) {
    Counters::add(counters_.dropNoPeer);
    answerUnreachable(pkt, len);
    return 0;
  }
  uint64_t nonce = 0;
  std::shared_ptr<Keypair> kp;
  Endpoint ep;
  {
    std::lock_guard<std::mutex> lock(peer->mu);
    kp = reserveNonce(*peer, now, &nonce);
    if (kp)
      ep = peer->endpoint;
    else
      stage(*peer, pkt, len);
  }
  if (!kp) {
    requestHandshake(*peer);
    return 0;
  }
  if (ep.family == 0) {
    Counters::add(counters_.dropNoEndpoint);
    return 0;
  }
  // The size is known before the seal: the batch takes the slot now, the bytes follow in send().
  size_t n = transportSize(len, mtu);
  if (!sock || !batch.add(*sock, ep, slot, n)) {
    Counters::add(counters_.udpTxErrors);
    return 0;
  }
  afterSend(*peer, *kp, nonce, true, n, now);
  seals.push_back(SealJob{std::move(kp), nonce, slot, len, mtu});
  return n;
}

void Device::answerUnreachable(const uint8_t* pkt, size_t len) {
  if (!mayAnswerWithIcmp(pkt, len) || !icmpLimiter_.allow(monotonicNs())) return;
  // Source address: for IPv6 an address of the TUN (the kernel accepts it). For IPv4 the original
  // destination: an IPv4 packet arriving on the TUN from one of the host's own addresses is
  // dropped as a martian (unless accept_local=1), so the TUN's address would never reach ping.
  uint8_t source[16];
  bool haveSource = false;
  if (ipVersion(pkt, len) == 6) {
    const uint8_t* origSrc = pkt + 8;
    bool linkLocal = origSrc[0] == 0xfe && (origSrc[1] & 0xc0) == 0x80;
    haveSource = tun_->address6(source, linkLocal);
  }
  uint8_t reply[kVnetHdrSize + kIcmpReplyMax];
  size_t n = buildUnreachable(pkt, len, haveSource ? source : nullptr, reply + kVnetHdrSize);
  if (n == 0) return;
  writeVnetHeader(reply, VnetHeader());
  Counters::add(writeTun(reply, kVnetHdrSize + n) ? counters_.icmpUnreachableSent : counters_.tunTxErrors);
}

}  // namespace weft
