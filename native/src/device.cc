// The Device's lifecycle, configuration and the sends shared by every thread (staged packets,
// keepalives, handshake messages). The two packet pipelines are device_send.cc (TUN thread) and
// device_receive.cc (UDP thread); the handshake path is device_handshake.cc.
#include "device.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "aead.h"
#include "byte_order.h"
#include "clock.h"
#include "constants.h"
#include "device_internal.h"
#include "sys_error.h"

namespace weft {

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

bool Device::writeTun(const uint8_t* buf, size_t len) {
  ssize_t w;
  do {
    w = write(tun_->fd(), buf, len);
  } while (w < 0 && errno == EINTR);
  return w == static_cast<ssize_t>(len);
}

}  // namespace weft
