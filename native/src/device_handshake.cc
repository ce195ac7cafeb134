// The handshake path of a Device: what the UDP thread does with handshake messages (cheap checks,
// cookie replies, hand-off to the process's handshake workers), what the workers do with them
// (the Noise messages, keypair installation, responses), and the configuration the control plane
// gives it (keys). JavaScript decides when to initiate (timers) and hears of completed handshakes;
// no handshake message from the network ever reaches it.
#include <cstring>

#include "byte_order.h"
#include "clock.h"
#include "device.h"
#include "sys_error.h"

namespace weft {
namespace {

constexpr int64_t kInitiationRate = kSecond / 50;  // one accepted initiation per peer per 20 ms

std::string keyString(const uint8_t* key) { return std::string(reinterpret_cast<const char*>(key), crypto::kKeySize); }

}  // namespace

// ---- configuration (JavaScript thread) ----------------------------------------------------------

std::shared_ptr<const crypto::X25519Key> Device::identity() {
  std::lock_guard<std::mutex> lock(identityMu_);
  return identity_;
}

void Device::setPrivateKey(const uint8_t* privateKey) {
  std::shared_ptr<crypto::X25519Key> next;
  if (privateKey) {
    next = std::make_shared<crypto::X25519Key>();
    if (!next->load(privateKey)) throw UsageError("EINVAL", "private key refused");
  }
  {
    std::lock_guard<std::mutex> lock(identityMu_);
    identity_ = next;
  }
  cookieChecker_.setKey(next ? next->publicKey() : nullptr);
  std::vector<std::shared_ptr<Peer>> peers;
  {
    std::shared_lock<std::shared_mutex> lock(tableMu_);
    for (auto& [id, peer] : peers_) peers.push_back(peer);
  }
  for (auto& peer : peers) {
    std::lock_guard<std::mutex> hl(peer->hsMu);
    peer->keys.staticStaticValid = next && next->derive(peer->keys.staticStatic, peer->keys.remoteStatic);
    if (!peer->keys.staticStaticValid) crypto::wipe(peer->keys.staticStatic, crypto::kKeySize);
  }
}

void Device::setPresharedKey(PeerId id, const uint8_t key[crypto::kKeySize]) {
  auto peer = findPeer(id);
  std::lock_guard<std::mutex> hl(peer->hsMu);
  std::memcpy(peer->keys.presharedKey, key, crypto::kKeySize);
}

Device::Initiate Device::initiateHandshake(PeerId id) {
  auto peer = findPeer(id);
  {
    std::lock_guard<std::mutex> hl(peer->hsMu);
    if (!peer->keys.staticStaticValid) return Initiate::NoKey;
  }
  {
    std::lock_guard<std::mutex> lock(peer->mu);
    if (peer->endpoint.family == 0) return Initiate::NoEndpoint;
  }
  if (peer->initiationQueued.exchange(true)) return Initiate::Queued;
  HandshakeJob job;
  job.device = this;
  job.kind = HandshakeJob::Kind::Initiate;
  job.peer = id;
  HandshakeWorkers::instance().submitLocal(job);
  return Initiate::Queued;
}

void Device::abandonHandshake(PeerId id) {
  auto peer = findPeer(id);
  std::lock_guard<std::mutex> hl(peer->hsMu);
  if (!peer->initiation.active) return;
  uint32_t index = peer->initiation.localIndex;
  peer->initiation.clear();
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  auto it = handshakeIndex_.find(index);
  if (it != handshakeIndex_.end() && it->second == peer) handshakeIndex_.erase(it);
}

// ---- shared helpers -------------------------------------------------------------------------------

uint32_t Device::reserveIndex() {
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  for (;;) {
    uint32_t index;
    crypto::randomBytes(reinterpret_cast<uint8_t*>(&index), sizeof index);
    if (index == 0 || index_.count(index) || handshakeIndex_.count(index) || reservedIndex_.count(index)) continue;
    reservedIndex_.insert(index);
    return index;
  }
}

void Device::releaseIndex(uint32_t index) {
  std::unique_lock<std::shared_mutex> lock(tableMu_);
  reservedIndex_.erase(index);
}

bool Device::sendHandshake(Peer& peer, const uint8_t* msg, size_t len) {
  Endpoint ep;
  {
    std::lock_guard<std::mutex> lock(peer.mu);
    ep = peer.endpoint;
  }
  if (ep.family == 0) return false;
  std::shared_ptr<UdpSocket> sock = socket();
  int err = sock ? sock->sendTo(ep, msg, len) : ENOTCONN;
  if (err) {
    Counters::add(counters_.udpTxErrors);
    return false;
  }
  Counters::add(counters_.udpTxPackets);
  int64_t now = monotonicNs();
  peer.txBytes.fetch_add(len, std::memory_order_relaxed);
  peer.lastAuthSent.store(now, std::memory_order_relaxed);
  peer.firstDataReceivedSinceAuthSent.store(0, std::memory_order_relaxed);
  return true;
}

void Device::installSession(const std::shared_ptr<Peer>& peer, const noise::SessionKeys& session, bool initiator) {
  KeypairSpec spec;
  spec.localIndex = session.localIndex;
  spec.remoteIndex = session.remoteIndex;
  std::memcpy(spec.sendKey, session.sendKey, kAeadKeySize);
  std::memcpy(spec.receiveKey, session.receiveKey, kAeadKeySize);
  spec.initiator = initiator;
  installKeypair(peer, spec);
  crypto::wipe(spec.sendKey, sizeof spec.sendKey);
  crypto::wipe(spec.receiveKey, sizeof spec.receiveKey);
}

void Device::handshakeComplete(Peer& peer, bool initiator) {
  Event ev(Event::Kind::HandshakeComplete);
  ev.peer = peer.id;
  ev.initiator = initiator;
  if (!events_->pushHandshake(std::move(ev))) Counters::add(counters_.handshakeEventsDropped);
}

// ---- UDP thread: cheap checks ---------------------------------------------------------------------

void Device::receiveHandshake(const uint8_t* data, size_t len, const Endpoint& source) {
  // mac1 first: without our public key a sender costs one keyed hash and nothing more.
  if (!cookieChecker_.checkMac1(data, len)) {
    Counters::add(counters_.handshakeDropBadMac1);
    return;
  }
  HandshakeWorkers& workers = HandshakeWorkers::instance();
  int64_t now = monotonicNs();
  if (workers.noteAndCheckLoad(now)) {
    if (!cookieChecker_.checkMac2(data, len, source, now)) {
      uint8_t reply[kCookieReplySize];
      if (cookieChecker_.createReply(data, len, source, now, reply)) {
        sendTo(source, reply, sizeof reply);
        Counters::add(counters_.handshakeCookieRepliesSent);
      }
      return;
    }
    if (!workers.rateLimiter().allow(source, now)) {
      Counters::add(counters_.handshakeDropRateLimited);
      return;
    }
  }
  HandshakeJob job;
  job.device = this;
  job.kind = data[0] == kMessageInitiation ? HandshakeJob::Kind::Initiation : HandshakeJob::Kind::Response;
  std::memcpy(job.msg, data, len);
  job.len = len;
  job.source = source;
  if (!workers.submit(job)) Counters::add(counters_.dropHandshakeQueue);
}

void Device::receiveCookieReply(const uint8_t* data, const Endpoint& source) {
  // Addressed to one of our handshake messages: an initiation in flight or a response we sent.
  uint32_t receiver = get32le(data + 4);
  std::shared_ptr<Peer> peer;
  {
    std::shared_lock<std::shared_mutex> lock(tableMu_);
    auto h = handshakeIndex_.find(receiver);
    if (h != handshakeIndex_.end()) {
      peer = h->second;
    } else {
      auto k = index_.find(receiver);
      if (k != index_.end()) peer = k->second.peer;
    }
  }
  if (!peer) {
    Counters::add(counters_.handshakeDropUnknownIndex);
    return;
  }
  (void)source;
  if (peer->cookies.consumeReply(data, monotonicNs()))
    Counters::add(counters_.handshakeCookieRepliesAccepted);
  else
    Counters::add(counters_.handshakeDropBadCookieReply);
}

// ---- handshake workers ----------------------------------------------------------------------------

void Device::runHandshakeJob(const HandshakeJob& job) {
  if (stopping_) return;
  switch (job.kind) {
    case HandshakeJob::Kind::Initiation:
      consumeInitiation(job);
      break;
    case HandshakeJob::Kind::Response:
      consumeResponse(job);
      break;
    case HandshakeJob::Kind::Initiate:
      createInitiation(job.peer);
      break;
  }
}

void Device::consumeInitiation(const HandshakeJob& job) {
  auto local = identity();
  noise::ConsumedInitiation in;
  if (!local || !noise::openStatic(*local, job.msg, &in)) {
    Counters::add(counters_.handshakeDropUnknownPeerOrBadCrypto);
    return;
  }
  std::shared_ptr<Peer> peer;
  {
    std::shared_lock<std::shared_mutex> lock(tableMu_);
    auto k = byKey_.find(keyString(in.remoteStatic));
    if (k != byKey_.end()) {
      auto p = peers_.find(k->second);
      if (p != peers_.end()) peer = p->second;
    }
  }
  if (!peer) {
    Counters::add(counters_.handshakeDropUnknownPeerOrBadCrypto);
    return;
  }
  int64_t now = monotonicNs();
  noise::PeerKeys keys;
  {
    std::lock_guard<std::mutex> hl(peer->hsMu);
    if (!noise::openTimestamp(peer->keys, job.msg, &in)) {
      Counters::add(counters_.handshakeDropUnknownPeerOrBadCrypto);
      return;
    }
    // Replay: strictly newer than the last accepted timestamp (big-endian, so bytewise order).
    if (peer->haveTimestamp && std::memcmp(in.timestamp, peer->lastTimestamp, crypto::kTai64nSize) <= 0) {
      Counters::add(counters_.handshakeDropReplayedTimestamp);
      return;
    }
    // Flood: at most one accepted initiation per peer every 1/50 s.
    if (peer->consumedAny && now - peer->lastInitiationConsumed <= kInitiationRate) {
      Counters::add(counters_.handshakeDropInitiationFlood);
      return;
    }
    std::memcpy(peer->lastTimestamp, in.timestamp, crypto::kTai64nSize);
    peer->haveTimestamp = true;
    peer->lastInitiationConsumed = now;
    peer->consumedAny = true;
    keys = peer->keys;
  }
  // Authenticated: the sender holds the peer's static key. Roam to where it came from.
  {
    std::lock_guard<std::mutex> lock(peer->mu);
    peer->endpoint = job.source;
  }
  uint32_t localIndex = reserveIndex();
  uint8_t response[noise::kResponseSize];
  noise::SessionKeys session;
  if (!noise::createResponse(in, keys, localIndex, response, &session)) {
    releaseIndex(localIndex);
    Counters::add(counters_.handshakeDropUnknownPeerOrBadCrypto);
    return;
  }
  peer->cookies.addMacs(response, sizeof response, now);
  // Installed before answering, so the initiator's first data packet finds the keypair.
  installSession(peer, session, false);
  sendHandshake(*peer, response, sizeof response);
  Counters::add(counters_.handshakeInitiationsAccepted);
  handshakeComplete(*peer, false);
}

void Device::consumeResponse(const HandshakeJob& job) {
  uint32_t receiver = get32le(job.msg + 8);
  std::shared_ptr<Peer> peer;
  {
    std::shared_lock<std::shared_mutex> lock(tableMu_);
    auto h = handshakeIndex_.find(receiver);
    if (h != handshakeIndex_.end()) peer = h->second;
  }
  auto local = identity();
  if (!peer || !local) {
    Counters::add(counters_.handshakeDropUnknownIndex);
    return;
  }
  noise::SessionKeys session;
  {
    std::lock_guard<std::mutex> hl(peer->hsMu);
    if (!noise::consumeResponse(*local, peer->keys, &peer->initiation, job.msg, &session)) {
      Counters::add(counters_.handshakeDropUnknownPeerOrBadCrypto);
      return;
    }
    // The handshake's index becomes the keypair's.
    std::unique_lock<std::shared_mutex> lock(tableMu_);
    auto h = handshakeIndex_.find(receiver);
    if (h != handshakeIndex_.end() && h->second == peer) handshakeIndex_.erase(h);
    reservedIndex_.insert(receiver);
  }
  size_t stagedBefore;
  {
    std::lock_guard<std::mutex> lock(peer->mu);
    peer->endpoint = job.source;
    stagedBefore = peer->staged.size();
  }
  installSession(peer, session, true);
  Counters::add(counters_.handshakeResponsesAccepted);
  // Confirm the session to the responder at once unless staged data already does.
  if (stagedBefore == 0) sendKeepalive(peer->id);
  handshakeComplete(*peer, true);
}

void Device::createInitiation(PeerId id) {
  auto peer = peerOrNull(id);
  if (!peer) return;
  peer->initiationQueued = false;
  auto local = identity();
  if (!local) return;
  uint8_t timestamp[crypto::kTai64nSize];
  crypto::tai64nNow(timestamp);
  uint8_t msg[noise::kInitiationSize];
  uint32_t localIndex = reserveIndex();
  {
    std::lock_guard<std::mutex> hl(peer->hsMu);
    uint32_t previous = peer->initiation.active ? peer->initiation.localIndex : 0;
    bool ok = noise::createInitiation(*local, peer->keys, localIndex, timestamp, msg, &peer->initiation);
    std::unique_lock<std::shared_mutex> lock(tableMu_);
    reservedIndex_.erase(localIndex);
    if (previous) {
      auto h = handshakeIndex_.find(previous);
      if (h != handshakeIndex_.end() && h->second == peer) handshakeIndex_.erase(h);
    }
    if (!ok) return;
    if (!peers_.count(id)) {
      peer->initiation.clear();
      return;
    }
    handshakeIndex_.emplace(localIndex, peer);
  }
  peer->cookies.addMacs(msg, sizeof msg, monotonicNs());
  sendHandshake(*peer, msg, sizeof msg);
}

}  // namespace weft
