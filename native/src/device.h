// The packet path of one WireGuard interface, independent of N-API: the TUN, the UDP socket, the
// peer / receiver-index / allowed-IPs tables and two threads.
//
//   TUN thread: read (a TCP super-packet with offloads) -> split into segments (offload.h) ->
//               destination lookup -> peer -> current keypair ? encrypt -> sendmmsg (UDP GSO runs)
//                                                           : stage (<= 128) + need-handshake
//               no peer -> ICMP unreachable back into the TUN (rate limited)
//   UDP thread: recvmmsg (UDP GRO: many datagrams per message) -> handshake message ? cheap checks
//               (mac1; under load mac2 or a cookie reply, rate limit) -> handshake workers
//               transport ? index -> keypair -> decrypt -> replay window -> key confirmation
//               -> roaming -> source check -> coalesce TCP segments (offload.h) -> TUN write
//   handshake workers (process-wide, handshake/workers.h): the Noise messages' Diffie-Hellman
//               work, keypair installation, responses; JavaScript hears "handshake complete".
//
// Locking: `tableMu_` (shared for lookups) guards peers_, index_, handshakeIndex_, byKey_ and
// allowedIps_; each peer's `mu` guards its endpoint, keypair slots and staged packets, its `hsMu`
// its handshake state. Order: a peer's hsMu, then tableMu_, then a peer's mu, never the reverse. Counters and per-peer figures are atomics. Public methods other than the threads are
// called from the JavaScript thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "allowed_ips.h"
#include "counters.h"
#include "crypto_pool.h"
#include "endpoint.h"
#include "events.h"
#include "handshake/cookie.h"
#include "handshake/workers.h"
#include "icmp.h"
#include "keypair.h"
#include "offload.h"
#include "peer.h"
#include "tun.h"
#include "udp.h"

namespace weft {

struct PeerState {
  uint64_t txBytes = 0;
  uint64_t rxBytes = 0;
  Endpoint endpoint;  // family 0: none
  int64_t lastAuthSent = 0;
  int64_t lastAuthReceived = 0;
  int64_t firstDataSentSinceAuthReceived = 0;
  int64_t firstDataReceivedSinceAuthSent = 0;
  bool hasCurrentKeypair = false;
  size_t staged = 0;
};

class Device {
 public:
  /**
   * Opens the TUN and sets its MTU. `events` must outlive the threads (until close()). `offloads`:
   * TSO/checksum offload on the TUN with split/coalesce, UDP GSO/GRO on the socket (each only where
   * the kernel has it); off gives one packet per read, write and datagram. `cryptoThreads`: extra
   * threads per direction that seal/open batches beside the packet thread (< 0: by core count).
   */
  Device(const std::string& name, int mtu, EventSink* events, bool offloads, int cryptoThreads);
  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const std::string& name() const { return tun_->name(); }
  void start();
  /** Stops and joins the threads, closes TUN and socket, wipes keys. Idempotent. */
  void close();
  bool closed() const { return closed_.load(); }
  bool started() const { return started_.load(); }

  uint16_t bind(uint16_t port);
  void setFwmark(uint32_t mark);
  int mtu() { return tun_->mtu(); }

  /** Our static key (clamped here); null removes it. Recomputes every peer's static-static secret. */
  void setPrivateKey(const uint8_t* privateKey);
  /** A peer and its static public key (EEXIST if the id or the key is taken). */
  void addPeer(PeerId id, const uint8_t publicKey[crypto::kKeySize]);
  void setPresharedKey(PeerId id, const uint8_t key[crypto::kKeySize]);
  enum class Initiate { Queued, NoEndpoint, NoKey };
  /**
   * Queues a handshake initiation to the peer for the handshake workers, unless one is queued
   * already. Nothing is queued when the peer has no endpoint or no static-static secret (we have
   * no private key, or theirs is a low-order point).
   */
  Initiate initiateHandshake(PeerId id);
  /** Forgets the initiation in flight: a late response to it is refused. */
  void abandonHandshake(PeerId id);
  /** Runs one job of the handshake workers (their threads only). */
  void runHandshakeJob(const HandshakeJob& job);
  void removePeer(PeerId id);
  void setEndpoint(PeerId id, const Endpoint& ep);
  void clearEndpoint(PeerId id);
  void insertAllowedIps(PeerId id, const std::vector<Prefix>& prefixes);
  void removeAllowedIps(PeerId id, const std::vector<Prefix>& prefixes);
  void clearAllowedIps(PeerId id);

  void installKeypair(PeerId id, const KeypairSpec& spec);
  /** installKeypair for a keypair whose index reserveIndex() handed out. */
  void installKeypair(const std::shared_ptr<Peer>& peer, const KeypairSpec& spec);
  void expireKeypairs(PeerId id);
  void clearStaged(PeerId id);
  void requestHandshakeAgain(PeerId id);
  bool sendKeepalive(PeerId id);
  bool sendToPeer(PeerId id, const uint8_t* data, size_t len);
  void sendTo(const Endpoint& ep, const uint8_t* data, size_t len);

  PeerState peerState(PeerId id);
  const Counters& counters() const { return counters_; }

  // TEST ONLY. Hooks for the key-lifetime tests (native.ts: testAgeKeypairs, testSetSendCounter);
  // the control plane never calls them, and weft-wg only reaches them when started with
  // WEFT_WG_TEST_HOOKS=1. They move the state the timers read instead of waiting minutes.
  /** Moves the creation time of every keypair of the peer (previous, current, next) `ns` back. */
  void testAgeKeypairs(PeerId id, int64_t ns);
  /** Sets the next send counter of the peer's current keypair; false when it has none. */
  bool testSetSendCounter(PeerId id, uint64_t counter);

 private:
  struct IndexEntry {
    std::shared_ptr<Keypair> keypair;
    std::shared_ptr<Peer> peer;
  };
  /** A datagram routed and counted, whose AEAD seal runs with the rest of its batch. */
  struct SealJob {
    std::shared_ptr<Keypair> keypair;
    uint64_t nonce;
    uint8_t* buf;  // header room + plaintext + room for padding and tag
    size_t plainLen;
    int mtu;
  };
  /** A transport message that passed the cheap checks, to be opened with its batch. */
  struct OpenJob {
    IndexEntry entry;
    uint64_t counter;
    uint8_t* data;
    size_t len;
    Endpoint source;
    int64_t now;
    bool authentic;
  };

  std::shared_ptr<Peer> findPeer(PeerId id);  // throws UsageError ENOENT
  std::shared_ptr<Peer> peerOrNull(PeerId id);
  std::shared_ptr<const crypto::X25519Key> identity();
  /** A fresh random receiver index, free in every table, reserved until released or installed. */
  uint32_t reserveIndex();
  void releaseIndex(uint32_t index);
  /** Sends a handshake message to the peer's endpoint, counted as an authenticated send. */
  bool sendHandshake(Peer& peer, const uint8_t* msg, size_t len);
  /** Installs a handshake's session keys (index from reserveIndex or the initiation's). */
  void installSession(const std::shared_ptr<Peer>& peer, const noise::SessionKeys& session, bool initiator);
  void handshakeComplete(Peer& peer, bool initiator);
  // The handshake path (device_handshake.cc).
  void receiveHandshake(const uint8_t* data, size_t len, const Endpoint& source);
  void receiveCookieReply(const uint8_t* data, const Endpoint& source);
  void consumeInitiation(const HandshakeJob& job);
  void consumeResponse(const HandshakeJob& job);
  void createInitiation(PeerId id);
  std::shared_ptr<UdpSocket> socket();
  void wake(int fd);
  void deviceGone(const std::string& reason);
  void requestHandshake(Peer& peer);
  void stage(Peer& peer, const uint8_t* pkt, size_t len);
  /** Under peer.mu: the current keypair with a reserved nonce, or null when none is usable. */
  std::shared_ptr<Keypair> reserveNonce(Peer& peer, int64_t now, uint64_t* nonce);
  /** Writes header, padding and tag around the plaintext at buf + 16; returns the datagram size. */
  size_t sealTransport(const Keypair& kp, uint64_t nonce, uint8_t* buf, size_t plainLen, int mtu);
  void afterSend(Peer& peer, const Keypair& kp, uint64_t nonce, bool data, size_t bytes, int64_t now);
  /** Encrypts and sends the peer's staged packets with its current keypair (any thread). */
  void sendStaged(Peer& peer);
  void dropIndexIfSame(const std::shared_ptr<Keypair>& kp);

  void tunLoop();
  /**
   * One packet at slot + 16; the datagram size when it was queued in `batch` (its seal added to
   * `seals`, to run before the batch is sent), else 0.
   */
  size_t routeFromTun(uint8_t* slot, size_t len, SendBatch& batch, std::vector<SealJob>& seals, const UdpSocket* sock,
                      int mtu, int64_t now);
  void answerUnreachable(const uint8_t* pkt, size_t len);
  void udpLoop();
  /** Handshake messages to the handshake path; transport messages that may be authentic to `opens`. */
  void receiveDatagram(uint8_t* data, size_t len, const Endpoint& source, std::vector<OpenJob>& opens);
  void prepareTransport(uint8_t* data, size_t len, const Endpoint& source, std::vector<OpenJob>& opens);
  /** After the batch's AEAD: replay window, key confirmation, roaming, source check -> `out`. */
  void finishTransport(OpenJob& job, TcpCoalescer& out);
  bool writeTun(const uint8_t* buf, size_t len);

  const bool offloads_;
  CryptoPool sealPool_;  // used by the TUN thread only
  CryptoPool openPool_;  // used by the UDP thread only
  std::unique_ptr<Tun> tun_;
  EventSink* events_;
  Counters counters_;
  IcmpRateLimiter icmpLimiter_{100};

  std::shared_mutex tableMu_;
  std::unordered_map<PeerId, std::shared_ptr<Peer>> peers_;
  std::unordered_map<uint32_t, IndexEntry> index_;
  /** Local indices of our initiations in flight, and indices reserved for a response being built. */
  std::unordered_map<uint32_t, std::shared_ptr<Peer>> handshakeIndex_;
  std::unordered_set<uint32_t> reservedIndex_;
  std::unordered_map<std::string, PeerId> byKey_;  // static public key (32 bytes) -> peer
  AllowedIps allowedIps_;

  std::mutex identityMu_;
  std::shared_ptr<const crypto::X25519Key> identity_;
  CookieChecker cookieChecker_;

  std::mutex sockMu_;
  std::shared_ptr<UdpSocket> sock_;
  uint32_t fwmark_ = 0;

  int wakeTun_ = -1;
  int wakeUdp_ = -1;
  std::thread tunThread_;
  std::thread udpThread_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> closed_{false};
  std::atomic<bool> goneRaised_{false};
};

}  // namespace weft
