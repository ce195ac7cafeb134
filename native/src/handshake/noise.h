// The WireGuard handshake: Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s, step by step as in reference §4.3
// (whitepaper §5.4). Pure functions over keys and message bytes; the state around them (which peer,
// replay and flood checks, index tables, keypair slots, mac1/mac2) lives in the device's handshake
// path (device_handshake.cc) and in cookie.h. mac1/mac2 are neither written nor checked here.
//
// C is the chaining key, H the running hash, as in the paper. Every secret intermediate is wiped.
#pragma once

#include <cstddef>
#include <cstdint>

#include "../crypto/primitives.h"

namespace weft {
namespace noise {

constexpr size_t kInitiationSize = 148;
constexpr size_t kResponseSize = 92;

/** What a handshake needs to know about the remote peer. */
struct PeerKeys {
  uint8_t remoteStatic[crypto::kKeySize] = {};
  uint8_t presharedKey[crypto::kKeySize] = {};  // all zero: none
  /** DH(our static, their static); invalid when we have no key or theirs is low-order. */
  uint8_t staticStatic[crypto::kKeySize] = {};
  bool staticStaticValid = false;
  ~PeerKeys() { crypto::wipe(this, sizeof *this); }
};

/** What the initiator keeps between sending message 1 and receiving message 2. */
struct InitiatorState {
  bool active = false;
  uint32_t localIndex = 0;
  uint8_t chainingKey[crypto::kHashSize] = {};
  uint8_t hash[crypto::kHashSize] = {};
  crypto::X25519Key ephemeral;
  void clear();
  ~InitiatorState() { clear(); }
};

/** Message 1 as the responder decrypted it: enough to answer it. */
struct ConsumedInitiation {
  uint32_t remoteIndex = 0;
  uint8_t remoteStatic[crypto::kKeySize] = {};
  uint8_t timestamp[crypto::kTai64nSize] = {};
  uint8_t remoteEphemeral[crypto::kKeySize] = {};
  uint8_t chainingKey[crypto::kHashSize] = {};
  uint8_t hash[crypto::kHashSize] = {};
  ~ConsumedInitiation() { crypto::wipe(this, sizeof *this); }
};

struct SessionKeys {
  uint8_t sendKey[crypto::kKeySize] = {};
  uint8_t receiveKey[crypto::kKeySize] = {};
  uint32_t localIndex = 0;
  uint32_t remoteIndex = 0;
  ~SessionKeys() { crypto::wipe(this, sizeof *this); }
};

/** C_i = HASH(CONSTRUCTION) and H_i = HASH(C_i || IDENTIFIER), computed once. */
const uint8_t* initialChainingKey();
const uint8_t* initialHash();

/**
 * Initiator, message 1, into `msg` (148 bytes; mac1/mac2 left zero). False when the peer's key is
 * unusable (no static-static secret, degenerate DH).
 */
bool createInitiation(const crypto::X25519Key& local, const PeerKeys& peer, uint32_t localIndex,
                      const uint8_t timestamp[crypto::kTai64nSize], uint8_t msg[kInitiationSize], InitiatorState* state);

/**
 * Responder, message 1, first half: decrypts the initiator's static key (one DH) into
 * `out->remoteStatic`. The caller looks the peer up by that key and calls openTimestamp.
 */
bool openStatic(const crypto::X25519Key& local, const uint8_t msg[kInitiationSize], ConsumedInitiation* out);
/** Second half: decrypts the timestamp with the peer's static-static secret. */
bool openTimestamp(const PeerKeys& peer, const uint8_t msg[kInitiationSize], ConsumedInitiation* inout);

/**
 * Responder, message 2, into `msg` (92 bytes; macs zero) and the session keys (from the
 * responder's point of view). False on a degenerate DH.
 */
bool createResponse(const ConsumedInitiation& in, const PeerKeys& peer, uint32_t localIndex, uint8_t msg[kResponseSize],
                    SessionKeys* keys);

/**
 * Initiator, message 2. False unless it answers `state` (receiver index), decrypts, and `state` is
 * active; a failure leaves `state` intact, so a forged response cannot spoil the genuine one. On
 * success `state` is cleared.
 */
bool consumeResponse(const crypto::X25519Key& local, const PeerKeys& peer, InitiatorState* state,
                     const uint8_t msg[kResponseSize], SessionKeys* keys);

}  // namespace noise
}  // namespace weft
