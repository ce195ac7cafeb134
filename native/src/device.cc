#include "device.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "aead.h"
#include "clock.h"
#include "constants.h"
#include "ip.h"
#include "sys_error.h"

namespace weft {
namespace {

// TUN reads per wake-up before the batch is sent: with TSO each read can be ~45 segments.
constexpr size_t kTunReads = 16;
// Encrypted datagrams waiting for sendmmsg: each sits at its own offset with room for the
// transport header before and padding + tag after; sent when either limit would be passed.
constexpr size_t kSendArena = size_t{1} << 20;
constexpr size_t kSendBatch = 1024;  // iovecs per sendmmsg (UIO_MAXIOV)
// recvmmsg messages per call; with GRO each may carry up to 64 KiB of datagrams.
constexpr size_t kUdpBatch = 16;

void put32le(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put64le(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get32le(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}
uint64_t get64le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

size_t paddedLength(size_t len, int mtu) {
  size_t m = mtu > 0 ? static_cast<size_t>(mtu) : SIZE_MAX;
  if (len >= m) return len;
  size_t padded = (len + kPaddingMultiple - 1) & ~(kPaddingMultiple - 1);
  return padded > m ? m : padded;
}

/** Size of the transport message carrying `plainLen` bytes (header, padded text, tag). */
size_t transportSize(size_t plainLen, int mtu) {
  return kTransportHeaderSize + paddedLength(plainLen, mtu) + kAeadTagSize;
}

void drainEventfd(int fd) {
  uint64_t v;
  while (read(fd, &v, sizeof v) > 0) {
  }
}

bool tunGoneErrno(int err) {
  return err == EBADFD || err == EIO || err == ENXIO || err == EBADF || err == ENODEV || err == EINVAL ||
         err == EFAULT;
}

void setIfZero(std::atomic<int64_t>& a, int64_t now) {
  int64_t expected = 0;
  a.compare_exchange_strong(expected, now, std::memory_order_relaxed);
}

}  // namespace

Device::Device(const std::string& name, int mtu, EventSink* events, bool offloads, int cryptoThreads)
    : offloads_(offloads),
      sealPool_(CryptoPool::resolve(cryptoThreads)),
      openPool_(CryptoPool::resolve(cryptoThreads)),
      tun_(new Tun(name, mtu, offloads)),
      events_(events) {
  wakeTun_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  wakeUdp_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wakeTun_ < 0 || wakeUdp_ < 0) {
    int err = errno;
    if (wakeTun_ >= 0) ::close(wakeTun_);
    if (wakeUdp_ >= 0) ::close(wakeUdp_);
    throw SysError(err, "eventfd");
  }
}

Device::~Device() { close(); }

void Device::start() {
  if (closed_) throw UsageError("ERR_CLOSED", "device is closed");
  if (started_.exchange(true)) throw UsageError("ERR_STARTED", "device already started");
  tunThread_ = std::thread([this] { tunLoop(); });
  udpThread_ = std::thread([this] { udpLoop(); });
}

void Device::close() {
  if (closed_.exchange(true)) return;
  stopping_ = true;
  wake(wakeTun_);
  wake(wakeUdp_);
  if (tunThread_.joinable()) tunThread_.join();
  if (udpThread_.joinable()) udpThread_.join();
  // After the UDP thread: nothing submits for this device any more.
  HandshakeWorkers::instance().detach(this);
  tun_->close();
  {
    std::lock_guard<std::mutex> lock(sockMu_);
    sock_.reset();
  }
  ::close(wakeTun_);
  ::close(wakeUdp_);
  wakeTun_ = wakeUdp_ = -1;
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  for (auto& [id, peer] : peers_) {
    std::lock_guard<std::mutex> pl(peer->mu);
    peer->previous.reset();
    peer->current.reset();
    peer->next.reset();
    peer->staged.clear();
  }
  for (auto& [id, peer] : peers_) {
    std::lock_guard<std::mutex> hl(peer->hsMu);
    peer->initiation.clear();
  }
  index_.clear();
  handshakeIndex_.clear();
  allowedIps_ = AllowedIps();
  std::lock_guard<std::mutex> il(identityMu_);
  identity_.reset();
}

void Device::wake(int fd) {
  uint64_t one = 1;
  if (fd >= 0) {
    ssize_t r = write(fd, &one, sizeof one);
    (void)r;  // a full eventfd is still readable, which is all a wake-up needs
  }
}

void Device::deviceGone(const std::string& reason) {
  if (!goneRaised_.exchange(true)) {
    Event ev(Event::Kind::DeviceGone);
    ev.reason = reason;
    events_->push(std::move(ev));
  }
  stopping_ = true;
  wake(wakeTun_);
  wake(wakeUdp_);
}

std::shared_ptr<UdpSocket> Device::socket() {
  std::lock_guard<std::mutex> lock(sockMu_);
  return sock_;
}

uint16_t Device::bind(uint16_t port) {
  std::shared_ptr<UdpSocket> old;
  uint32_t mark;
  {
    std::lock_guard<std::mutex> lock(sockMu_);
    old = sock_;
    mark = fwmark_;
  }
  // Already bound there: re-binding would only collide with ourselves.
  if (old && port != 0 && old->port() == port) return port;
  std::shared_ptr<UdpSocket> fresh = UdpSocket::open(port, mark, offloads_);  // throws, keeping the old one
  {
    std::lock_guard<std::mutex> lock(sockMu_);
    sock_ = fresh;
  }
  wake(wakeUdp_);
  return fresh->port();
}

void Device::setFwmark(uint32_t mark) {
  std::lock_guard<std::mutex> lock(sockMu_);
  if (sock_) {
    int err = sock_->setMark(mark);
    if (err) throw SysError(err, "SO_MARK");
  }
  fwmark_ = mark;
}

std::shared_ptr<Peer> Device::findPeer(PeerId id) {
  std::shared_lock<std::shared_mutex> lock(tableMu_);
  auto it = peers_.find(id);
  if (it == peers_.end()) throw UsageError("ENOENT", "no peer " + std::to_string(id));
  return it->second;
}

std::shared_ptr<Peer> Device::peerOrNull(PeerId id) {
  std::shared_lock<std::shared_mutex> lock(tableMu_);
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : it->second;
}

void Device::addPeer(PeerId id, const uint8_t publicKey[crypto::kKeySize]) {
  auto peer = std::make_shared<Peer>(id);
  std::memcpy(peer->keys.remoteStatic, publicKey, crypto::kKeySize);
  peer->cookies.setKey(publicKey);
  if (auto local = identity()) peer->keys.staticStaticValid = local->derive(peer->keys.staticStatic, publicKey);
  std::string key(reinterpret_cast<const char*>(publicKey), crypto::kKeySize);
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  if (peers_.count(id)) throw UsageError("EEXIST", "peer " + std::to_string(id) + " exists");
  if (byKey_.count(key)) throw UsageError("EEXIST", "a peer with that public key exists");
  peers_.emplace(id, peer);
  byKey_.emplace(std::move(key), id);
}

void Device::removePeer(PeerId id) {
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  auto it = peers_.find(id);
  if (it == peers_.end()) return;
  std::shared_ptr<Peer> peer = it->second;
  peers_.erase(it);
  byKey_.erase(std::string(reinterpret_cast<const char*>(peer->keys.remoteStatic), crypto::kKeySize));
  for (auto h = handshakeIndex_.begin(); h != handshakeIndex_.end();)
    h = h->second == peer ? handshakeIndex_.erase(h) : std::next(h);
  allowedIps_.removePeer(id);
  std::lock_guard<std::mutex> pl(peer->mu);
  for (auto* slot : {&peer->previous, &peer->current, &peer->next}) {
    if (*slot) {
      auto ix = index_.find((*slot)->localIndex);
      if (ix != index_.end() && ix->second.keypair == *slot) index_.erase(ix);
      slot->reset();
    }
  }
  peer->staged.clear();
}

void Device::setEndpoint(PeerId id, const Endpoint& ep) {
  auto peer = findPeer(id);
  std::lock_guard<std::mutex> lock(peer->mu);
  peer->endpoint = ep;
}

void Device::clearEndpoint(PeerId id) {
  auto peer = findPeer(id);
  std::lock_guard<std::mutex> lock(peer->mu);
  peer->endpoint = Endpoint();
}

void Device::insertAllowedIps(PeerId id, const std::vector<Prefix>& prefixes) {
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  if (!peers_.count(id)) throw UsageError("ENOENT", "no peer " + std::to_string(id));
  for (const Prefix& p : prefixes) allowedIps_.insert(p, id);
}

void Device::removeAllowedIps(PeerId id, const std::vector<Prefix>& prefixes) {
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  if (!peers_.count(id)) throw UsageError("ENOENT", "no peer " + std::to_string(id));
  for (const Prefix& p : prefixes) allowedIps_.remove(p, id);
}

void Device::clearAllowedIps(PeerId id) {
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  if (!peers_.count(id)) throw UsageError("ENOENT", "no peer " + std::to_string(id));
  allowedIps_.removePeer(id);
}

void Device::installKeypair(PeerId id, const KeypairSpec& spec) {
  auto peer = findPeer(id);
  {
    std::shared_lock<std::shared_mutex> lock(tableMu_);
    if (index_.count(spec.localIndex) || handshakeIndex_.count(spec.localIndex) || reservedIndex_.count(spec.localIndex))
      throw UsageError("EEXIST", "receiver index " + std::to_string(spec.localIndex) + " is in use");
  }
  installKeypair(peer, spec);
}

void Device::installKeypair(const std::shared_ptr<Peer>& peer, const KeypairSpec& spec) {
  auto kp = std::make_shared<Keypair>(spec, monotonicNs());
  std::vector<std::shared_ptr<Keypair>> discarded;
  bool usable;
  {
    std::unique_lock<std::shared_mutex> lock(tableMu_);
    reservedIndex_.erase(spec.localIndex);
    auto it = peers_.find(peer->id);
    if (it == peers_.end() || it->second != peer) return;  // removed meanwhile: the keys go with it
    std::lock_guard<std::mutex> pl(peer->mu);
    if (spec.initiator) {
      // previous := next if a confirmation was pending (the current one is superseded), else current.
      discarded.push_back(std::move(peer->previous));
      if (peer->next) {
        discarded.push_back(std::move(peer->current));
        peer->previous = std::move(peer->next);
      } else {
        peer->previous = std::move(peer->current);
      }
      peer->current = kp;
    } else {
      discarded.push_back(std::move(peer->next));
      discarded.push_back(std::move(peer->previous));
      peer->next = kp;
    }
    for (auto& old : discarded) {
      if (!old) continue;
      auto ix = index_.find(old->localIndex);
      if (ix != index_.end() && ix->second.keypair == old) index_.erase(ix);
    }
    index_.emplace(spec.localIndex, IndexEntry{kp, peer});
    usable = peer->current != nullptr && !peer->staged.empty();
  }
  peer->handshakeRequested = false;
  discarded.clear();  // keys are wiped as the last references go
  if (usable) sendStaged(*peer);
}

void Device::expireKeypairs(PeerId id) {
  abandonHandshake(id);  // throws ENOENT
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  auto it = peers_.find(id);
  if (it == peers_.end()) throw UsageError("ENOENT", "no peer " + std::to_string(id));
  Peer& peer = *it->second;
  std::lock_guard<std::mutex> pl(peer.mu);
  for (auto* slot : {&peer.previous, &peer.current, &peer.next}) {
    if (*slot) {
      auto ix = index_.find((*slot)->localIndex);
      if (ix != index_.end() && ix->second.keypair == *slot) index_.erase(ix);
      slot->reset();
    }
  }
  peer.staged.clear();
}

void Device::clearStaged(PeerId id) {
  auto peer = findPeer(id);
  std::lock_guard<std::mutex> lock(peer->mu);
  peer->staged.clear();
}

void Device::requestHandshakeAgain(PeerId id) { findPeer(id)->handshakeRequested = false; }

void Device::requestHandshake(Peer& peer) {
  if (peer.handshakeRequested.exchange(true)) return;
  Event ev(Event::Kind::NeedHandshake);
  ev.peer = peer.id;
  events_->push(std::move(ev));
}

void Device::stage(Peer& peer, const uint8_t* pkt, size_t len) {
  if (peer.staged.size() >= kMaxStagedPackets) {
    peer.staged.pop_front();
    Counters::add(counters_.dropStagedOverflow);
  }
  peer.staged.emplace_back(pkt, pkt + len);
}

std::shared_ptr<Keypair> Device::reserveNonce(Peer& peer, int64_t now, uint64_t* nonce) {
  const std::shared_ptr<Keypair>& kp = peer.current;
  if (!kp || kp->age(now) >= kRejectAfterTime) return nullptr;
  uint64_t n = kp->sendCounter.load(std::memory_order_relaxed);
  do {
    if (n >= kRejectAfterMessages) return nullptr;  // exhausted: the counter never moves again
  } while (!kp->sendCounter.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
  *nonce = n;
  return kp;
}

size_t Device::sealTransport(const Keypair& kp, uint64_t nonce, uint8_t* buf, size_t plainLen, int mtu) {
  size_t padded = paddedLength(plainLen, mtu);
  uint8_t* text = buf + kTransportHeaderSize;
  std::memset(text + plainLen, 0, padded - plainLen);
  buf[0] = kMessageTransport;
  buf[1] = buf[2] = buf[3] = 0;
  put32le(buf + 4, kp.remoteIndex);
  put64le(buf + 8, nonce);
  Aead::local().seal(kp.sendKey, nonce, text, padded, text);
  return transportSize(plainLen, mtu);
}

void Device::afterSend(Peer& peer, const Keypair& kp, uint64_t nonce, bool data, size_t bytes, int64_t now) {
  peer.txBytes.fetch_add(bytes, std::memory_order_relaxed);
  peer.lastAuthSent.store(now, std::memory_order_relaxed);
  peer.firstDataReceivedSinceAuthSent.store(0, std::memory_order_relaxed);
  if (data) setIfZero(peer.firstDataSentSinceAuthReceived, now);
  // Either side rekeys on the message count; only the initiator on age (wireguard-go
  // keepKeyFreshSending, kernel keep_key_fresh).
  if (nonce >= kRekeyAfterMessages || (kp.initiator && kp.age(now) >= kRekeyAfterTime)) requestHandshake(peer);
}

void Device::sendStaged(Peer& peer) {
  int64_t now = monotonicNs();
  int mtu = tun_->mtu();
  std::vector<std::vector<uint8_t>> packets;
  std::vector<uint64_t> nonces;
  std::shared_ptr<Keypair> kp;
  Endpoint ep;
  bool exhausted = false;
  {
    std::lock_guard<std::mutex> lock(peer.mu);
    ep = peer.endpoint;
    while (!peer.staged.empty()) {
      uint64_t nonce;
      std::shared_ptr<Keypair> k = reserveNonce(peer, now, &nonce);
      if (!k) {
        exhausted = true;
        break;
      }
      kp = std::move(k);
      packets.push_back(std::move(peer.staged.front()));
      peer.staged.pop_front();
      nonces.push_back(nonce);
    }
  }
  if (exhausted) requestHandshake(peer);
  if (packets.empty()) return;
  if (ep.family == 0) {
    Counters::add(counters_.dropNoEndpoint, packets.size());
    return;
  }
  std::shared_ptr<UdpSocket> sock = socket();
  if (!sock) {
    Counters::add(counters_.udpTxErrors, packets.size());
    return;
  }
  SendBatch batch(packets.size());
  std::vector<std::vector<uint8_t>> wire(packets.size());
  for (size_t i = 0; i < packets.size(); ++i) {
    const auto& pkt = packets[i];
    wire[i].resize(kTransportHeaderSize + pkt.size() + kPaddingMultiple + kAeadTagSize);
    std::memcpy(wire[i].data() + kTransportHeaderSize, pkt.data(), pkt.size());
    size_t n = sealTransport(*kp, nonces[i], wire[i].data(), pkt.size(), mtu);
    if (!batch.add(*sock, ep, wire[i].data(), n)) {
      Counters::add(counters_.udpTxErrors);
      continue;
    }
    afterSend(peer, *kp, nonces[i], true, n, now);
  }
  SendBatch::Result r = batch.flush(*sock);
  Counters::add(counters_.udpTxPackets, r.sent);
  Counters::add(counters_.udpTxErrors, r.failed);
  Counters::add(counters_.udpTxGsoRuns, r.gsoRuns);
}

bool Device::sendKeepalive(PeerId id) {
  auto peer = findPeer(id);
  int64_t now = monotonicNs();
  uint64_t nonce = 0;
  std::shared_ptr<Keypair> kp;
  Endpoint ep;
  {
    std::lock_guard<std::mutex> lock(peer->mu);
    kp = reserveNonce(*peer, now, &nonce);
    ep = peer->endpoint;
  }
  if (!kp) {
    requestHandshake(*peer);
    return false;
  }
  if (ep.family == 0) {
    Counters::add(counters_.dropNoEndpoint);
    return false;
  }
  uint8_t buf[kTransportMinSize];
  size_t n = sealTransport(*kp, nonce, buf, 0, 0);
  std::shared_ptr<UdpSocket> sock = socket();
  int err = sock ? sock->sendTo(ep, buf, n) : ENOTCONN;
  if (err) {
    Counters::add(counters_.udpTxErrors);
    return false;
  }
  Counters::add(counters_.udpTxPackets);
  afterSend(*peer, *kp, nonce, false, n, now);
  return true;
}

bool Device::sendToPeer(PeerId id, const uint8_t* data, size_t len) {
  auto peer = findPeer(id);
  return sendHandshake(*peer, data, len);
}

void Device::sendTo(const Endpoint& ep, const uint8_t* data, size_t len) {
  std::shared_ptr<UdpSocket> sock = socket();
  int err = sock ? sock->sendTo(ep, data, len) : ENOTCONN;
  Counters::add(err ? counters_.udpTxErrors : counters_.udpTxPackets);
}

PeerState Device::peerState(PeerId id) {
  auto peer = findPeer(id);
  PeerState s;
  {
    std::lock_guard<std::mutex> lock(peer->mu);
    s.endpoint = peer->endpoint;
    s.hasCurrentKeypair = peer->current != nullptr;
    s.staged = peer->staged.size();
  }
  s.txBytes = peer->txBytes.load();
  s.rxBytes = peer->rxBytes.load();
  s.lastAuthSent = peer->lastAuthSent.load();
  s.lastAuthReceived = peer->lastAuthReceived.load();
  s.firstDataSentSinceAuthReceived = peer->firstDataSentSinceAuthReceived.load();
  s.firstDataReceivedSinceAuthSent = peer->firstDataReceivedSinceAuthSent.load();
  return s;
}

// ---- Test hooks -------------------------------------------------------------------------------

void Device::testAgeKeypairs(PeerId id, int64_t ns) {
  auto peer = findPeer(id);
  std::lock_guard<std::mutex> lock(peer->mu);
  for (auto* slot : {&peer->previous, &peer->current, &peer->next})
    if (*slot) (*slot)->created.fetch_sub(ns, std::memory_order_relaxed);
}

bool Device::testSetSendCounter(PeerId id, uint64_t counter) {
  auto peer = findPeer(id);
  std::lock_guard<std::mutex> lock(peer->mu);
  if (!peer->current) return false;
  peer->current->sendCounter.store(counter, std::memory_order_relaxed);
  return true;
}

// ---- TUN thread -------------------------------------------------------------------------------

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

bool Device::writeTun(const uint8_t* buf, size_t len) {
  ssize_t w;
  do {
    w = write(tun_->fd(), buf, len);
  } while (w < 0 && errno == EINTR);
  return w == static_cast<ssize_t>(len);
}

// ---- UDP thread -------------------------------------------------------------------------------

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
