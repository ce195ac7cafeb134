// Global traffic and drop counters of the packet path (NativeCounters in src/wireguard/native.ts).
// Relaxed atomics: each is an independent monotonically increasing figure.
#pragma once

#include <atomic>
#include <cstdint>

namespace weft {

struct Counters {
  using C = std::atomic<uint64_t>;
  C tunRxPackets{0};
  C tunTxPackets{0};
  C udpRxPackets{0};
  C udpTxPackets{0};
  C dropMalformed{0};
  C dropUnknownIndex{0};
  C dropDecrypt{0};
  C dropReplay{0};
  C dropSourceCheck{0};
  C dropInnerMalformed{0};
  C dropNoPeer{0};
  C dropStagedOverflow{0};
  C dropHandshakeQueue{0};
  C dropExpiredKey{0};
  C icmpUnreachableSent{0};
  // Beyond the contract (additive): failures that are not protocol drops.
  C dropNoEndpoint{0};  // data for a peer with a keypair but no endpoint
  C udpTxErrors{0};     // datagrams the kernel refused (no route, no socket bound...)
  C tunTxErrors{0};     // packets the TUN refused
  // Offload activity: how much of the traffic travelled as super-packets and GSO/GRO runs.
  C tunRxSuperPackets{0};  // TUN reads that were TSO super-packets (split into > 1 segment)
  C tunTxSuperPackets{0};  // TUN writes that merged > 1 segment
  C udpTxGsoRuns{0};       // UDP sends carrying > 1 datagram (UDP_SEGMENT)
  C udpRxGroRuns{0};       // UDP receives carrying > 1 datagram (UDP_GRO)
  // Handshake messages (device_handshake.cc), each in one place: accepted, answered, or why dropped.
  C handshakeInitiationsAccepted{0};
  C handshakeResponsesAccepted{0};
  C handshakeCookieRepliesAccepted{0};
  C handshakeCookieRepliesSent{0};
  C handshakeDropBadMac1{0};
  C handshakeDropRateLimited{0};
  C handshakeDropUnknownPeerOrBadCrypto{0};
  C handshakeDropReplayedTimestamp{0};
  C handshakeDropInitiationFlood{0};
  C handshakeDropUnknownIndex{0};
  C handshakeDropBadCookieReply{0};
  C handshakeEventsDropped{0};  // completions JavaScript was too busy to take (its timers catch up)

  static void add(C& c, uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }
};

}  // namespace weft
