// The UDP thread of a Device: recvmmsg (UDP GRO: many datagrams per message) -> handshake message ?
// the handshake path (device_handshake.cc) : transport message -> index -> keypair -> open with the
// batch -> replay window -> key confirmation -> roaming -> source check -> coalesce TCP segments
// -> TUN write.
#include <poll.h>

#include <algorithm>

#include "aead.h"
#include "byte_order.h"
#include "clock.h"
#include "constants.h"
#include "device.h"
#include "device_internal.h"
#include "ip.h"

namespace weft {
namespace {

// recvmmsg messages per call; with GRO each may carry up to 64 KiB of datagrams.
constexpr size_t kUdpBatch = 16;

}  // namespace

void Device::udpLoop() {
  RecvBatch batch(kUdpBatch);
  // Merging needs the TUN to understand super-packets; without offloads every packet goes alone.
  TcpCoalescer tunOut([this](uint8_t* buf, size_t len) { return writeTun(buf, len); }, tun_->offloads());
  std::vector<OpenJob> opens;
  opens.reserve(kUdpBatch * 64);
  while (!stopping_) {
    std::shared_ptr<UdpSocket> sock = socket();
    pollfd fds[2] = {{sock ? sock->fd() : -1, POLLIN, 0}, {wakeUdp_, POLLIN, 0}};
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      deviceGone(std::string("UDP poll: ") + std::strerror(errno));
      break;
    }
    if (fds[1].revents) {
      drainEventfd(wakeUdp_);
      continue;  // stop, or a new socket to poll
    }
    if (!sock || !fds[0].revents) continue;
    int n = batch.receive(*sock);
    if (n < 0) continue;  // a queued socket error (e.g. an ICMP report); nothing lost
    for (int m = 0; m < n; ++m) {
      size_t i = static_cast<size_t>(m);
      if (batch.truncated(i)) {
        Counters::add(counters_.udpRxPackets);
        Counters::add(counters_.dropMalformed);
        continue;
      }
      // With GRO a message is a run of datagrams of one size (the last may be shorter).
      size_t total = batch.length(i);
      size_t step = batch.segmentSize(i);
      if (step == 0) step = 1;  // an empty datagram: handled (and counted) as malformed below
      if (step < total) Counters::add(counters_.udpRxGroRuns);
      Endpoint source = batch.source(i);
      size_t offset = 0;
      do {
        size_t len = std::min(step, total - offset);
        Counters::add(counters_.udpRxPackets);
        receiveDatagram(batch.data(i) + offset, len, source, opens);
        offset += len;
      } while (offset < total);
    }
    // Authenticate and decrypt the whole batch (in parallel), then everything order-sensitive in
    // arrival order: the replay window, key confirmation, roaming and the TUN writes.
    openPool_.run(opens.size(), [&](size_t k) {
      OpenJob& j = opens[k];
      uint8_t* text = j.data + kTransportHeaderSize;
      j.authentic = Aead::local().open(j.entry.keypair->receiveKey, j.counter, text, j.len - kTransportHeaderSize, text);
    });
    for (OpenJob& j : opens) finishTransport(j, tunOut);
    opens.clear();
    TcpCoalescer::Result w = tunOut.flush();
    Counters::add(counters_.tunTxPackets, w.written);
    Counters::add(counters_.tunTxErrors, w.failed);
    Counters::add(counters_.tunTxSuperPackets, w.merged);
  }
}

void Device::receiveDatagram(uint8_t* data, size_t len, const Endpoint& source, std::vector<OpenJob>& opens) {
  // The type is a little-endian 32-bit word: one type byte and three zero bytes.
  if (len < 4 || data[1] != 0 || data[2] != 0 || data[3] != 0) {
    Counters::add(counters_.dropMalformed);
    return;
  }
  uint8_t type = data[0];
  if ((type == kMessageInitiation && len == kInitiationSize) || (type == kMessageResponse && len == kResponseSize)) {
    receiveHandshake(data, len, source);
    return;
  }
  if (type == kMessageCookieReply && len == kCookieReplySize) {
    receiveCookieReply(data, source);
    return;
  }
  if (type == kMessageTransport && len >= kTransportMinSize) {
    prepareTransport(data, len, source, opens);
    return;
  }
  Counters::add(counters_.dropMalformed);
}

void Device::dropIndexIfSame(const std::shared_ptr<Keypair>& kp) {
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  auto ix = index_.find(kp->localIndex);
  if (ix != index_.end() && ix->second.keypair == kp) index_.erase(ix);
}

void Device::prepareTransport(uint8_t* data, size_t len, const Endpoint& source, std::vector<OpenJob>& opens) {
  uint32_t receiver = get32le(data + 4);
  uint64_t counter = get64le(data + 8);
  IndexEntry entry;
  {
    std::shared_lock<std::shared_mutex> lock(tableMu_);
    auto it = index_.find(receiver);
    if (it == index_.end()) {
      Counters::add(counters_.dropUnknownIndex);
      return;
    }
    entry = it->second;
  }
  int64_t now = monotonicNs();
  if (entry.keypair->age(now) >= kRejectAfterTime) {
    Counters::add(counters_.dropExpiredKey);
    return;
  }
  if (counter >= kRejectAfterMessages) {
    Counters::add(counters_.dropReplay);
    return;
  }
  opens.push_back(OpenJob{std::move(entry), counter, data, len, source, now, false});
}

void Device::finishTransport(OpenJob& job, TcpCoalescer& out) {
  if (!job.authentic) {
    Counters::add(counters_.dropDecrypt);
    return;
  }
  Keypair& kp = *job.entry.keypair;
  Peer& peer = *job.entry.peer;
  const IndexEntry& entry = job.entry;
  const uint64_t counter = job.counter;
  const int64_t now = job.now;
  const Endpoint& source = job.source;
  const size_t len = job.len;
  uint8_t* text = job.data + kTransportHeaderSize;
  size_t textLen = len - kTransportMinSize;
  if (!kp.acceptCounter(counter)) {
    Counters::add(counters_.dropReplay);
    return;
  }

  // Authenticated. Key confirmation (responder's `next` becomes current) and roaming.
  bool confirmed = false;
  bool isCurrent;
  std::shared_ptr<Keypair> retired;
  {
    std::lock_guard<std::mutex> lock(peer.mu);
    if (peer.next == entry.keypair) {
      retired = std::move(peer.previous);
      peer.previous = std::move(peer.current);
      peer.current = std::move(peer.next);
      peer.next = nullptr;
      confirmed = true;
    }
    isCurrent = peer.current == entry.keypair;
    peer.endpoint = source;
  }
  if (retired) dropIndexIfSame(retired);
  if (confirmed) {
    Event ev(Event::Kind::KeypairConfirmed);
    ev.peer = peer.id;
    events_->push(std::move(ev));
    sendStaged(peer);
  }
  peer.lastAuthReceived.store(now, std::memory_order_relaxed);
  peer.firstDataSentSinceAuthReceived.store(0, std::memory_order_relaxed);
  peer.rxBytes.fetch_add(len, std::memory_order_relaxed);
  if (isCurrent && kp.initiator && kp.age(now) >= kRekeyOnReceiveAge) requestHandshake(peer);

  if (textLen == 0) return;  // keepalive
  setIfZero(peer.firstDataReceivedSinceAuthSent, now);

  unsigned family = 0;
  const uint8_t* src = nullptr;
  size_t ipLen = ipValidate(text, textLen, &family, &src);
  if (ipLen == 0) {
    Counters::add(counters_.dropInnerMalformed);
    return;
  }
  {
    std::shared_lock<std::shared_mutex> lock(tableMu_);
    std::optional<PeerId> owner = family == 4 ? allowedIps_.lookup4(src) : allowedIps_.lookup6(src);
    if (!owner || *owner != peer.id) {
      Counters::add(counters_.dropSourceCheck);
      return;
    }
  }
  // The transport header before `text` is spent: it is the scratch room for the vnet header.
  out.add(text, ipLen);
}

}  // namespace weft
