// Per-peer state of the packet path: endpoint, keypair slots, staged packets, traffic figures and
// the timestamps the control plane's timers read. `mu` guards endpoint, slots and staged packets;
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
};

}  // namespace weft
