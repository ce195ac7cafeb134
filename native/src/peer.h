// Per-peer state of the packet path: endpoint, keypair slots, staged packets, traffic figures and
// the timestamps the control plane's timers read; and the handshake state (keys, the initiation in
// flight, the responder's replay and flood marks, cookies). `mu` guards endpoint, slots and staged
// packets; `hsMu` the handshake state (taken before the device's tableMu_ and before `mu`);
// figures are atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "allowed_ips.h"
#include "endpoint.h"
#include "handshake/cookie.h"
#include "handshake/noise.h"
#include "keypair.h"

namespace weft {

struct Peer {
  explicit Peer(PeerId peerId) : id(peerId) {}

  const PeerId id;

  std::mutex mu;
  Endpoint endpoint;  // family 0: none
  std::shared_ptr<Keypair> previous, current, next;
  std::deque<std::vector<uint8_t>> staged;

  std::atomic<uint64_t> txBytes{0};
  std::atomic<uint64_t> rxBytes{0};
  // Monotonic ns; 0 = never / none.
  std::atomic<int64_t> lastAuthSent{0};
  std::atomic<int64_t> lastAuthReceived{0};
  std::atomic<int64_t> firstDataSentSinceAuthReceived{0};
  std::atomic<int64_t> firstDataReceivedSinceAuthSent{0};
  /** A need-handshake event was raised and not yet answered (installKeypair/requestHandshakeAgain). */
  std::atomic<bool> handshakeRequested{false};

  std::mutex hsMu;
  noise::PeerKeys keys;
  noise::InitiatorState initiation;
  /** Responder anti-replay: the greatest TAI64N accepted, and when (flood limit, monotonic ns). */
  uint8_t lastTimestamp[crypto::kTai64nSize] = {};
  bool haveTimestamp = false;
  int64_t lastInitiationConsumed = 0;
  bool consumedAny = false;
  CookieGenerator cookies;  // its own lock
  /** An initiation is queued for the handshake workers (at most one per peer). */
  std::atomic<bool> initiationQueued{false};
};

}  // namespace weft
