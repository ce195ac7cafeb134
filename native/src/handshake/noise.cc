#include "noise.h"

#include <cstring>

#include "../byte_order.h"

namespace weft {
namespace noise {
namespace {

using crypto::kHashSize;
using crypto::kKeySize;
using crypto::kTagSize;
using crypto::kTai64nSize;

const char kConstruction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
const char kIdentifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

// Message layouts (reference §4.2).
constexpr size_t kInitSender = 4, kInitEphemeral = 8, kInitStatic = 40, kInitTimestamp = 88;
constexpr size_t kRespSender = 4, kRespReceiver = 8, kRespEphemeral = 12, kRespEmpty = 44;

struct Constants {
  uint8_t chainingKey[kHashSize];
  uint8_t hash[kHashSize];
  Constants() {
    crypto::hash(chainingKey, reinterpret_cast<const uint8_t*>(kConstruction), sizeof kConstruction - 1);
    crypto::hash(hash, chainingKey, kHashSize, reinterpret_cast<const uint8_t*>(kIdentifier), sizeof kIdentifier - 1);
  }
};

const Constants& constants() {
  static const Constants c;
  return c;
}

/** H = HASH(H || data), in place. */
void mixHash(uint8_t h[kHashSize], const uint8_t* data, size_t len) { crypto::hash(h, h, kHashSize, data, len); }

/** C = KDF1(C, input), in place. */
void mixKey(uint8_t c[kHashSize], const uint8_t* input, size_t len) {
  uint8_t next[kHashSize];
  crypto::kdf(next, nullptr, nullptr, c, input, len);
  std::memcpy(c, next, kHashSize);
  crypto::wipe(next, sizeof next);
}

/** (C, k) = KDF2(C, input), in place for C. */
void mixKeyAndKey(uint8_t c[kHashSize], uint8_t key[kKeySize], const uint8_t* input, size_t len) {
  uint8_t next[kHashSize];
  crypto::kdf(next, key, nullptr, c, input, len);
  std::memcpy(c, next, kHashSize);
  crypto::wipe(next, sizeof next);
}

/** H = HASH(H_i || responder's static): where both sides start. */
void startHash(uint8_t h[kHashSize], const uint8_t responderStatic[kKeySize]) {
  crypto::hash(h, constants().hash, kHashSize, responderStatic, kKeySize);
}

/**
 * The part of message 2 both sides compute once they have the two DH results: C = KDF1(C, E_r);
 * H = HASH(H || E_r); C = KDF1(C, ee); C = KDF1(C, se); (C, τ, k) = KDF3(C, psk); H = HASH(H || τ).
 */
void mixResponse(uint8_t c[kHashSize], uint8_t h[kHashSize], const uint8_t responderEphemeral[kKeySize],
                 const uint8_t ee[kKeySize], const uint8_t se[kKeySize], const uint8_t psk[kKeySize],
                 uint8_t key[kKeySize]) {
  mixKey(c, responderEphemeral, kKeySize);
  mixHash(h, responderEphemeral, kKeySize);
  mixKey(c, ee, kKeySize);
  mixKey(c, se, kKeySize);
  uint8_t next[kHashSize], tau[kHashSize];
  crypto::kdf(next, tau, key, c, psk, kKeySize);
  std::memcpy(c, next, kHashSize);
  mixHash(h, tau, kHashSize);
  crypto::wipe(next, sizeof next);
  crypto::wipe(tau, sizeof tau);
}

/** (T_send, T_recv) = KDF2(C, ε) from the initiator's point of view. */
void deriveTransport(const uint8_t c[kHashSize], uint8_t initiatorSend[kKeySize], uint8_t initiatorReceive[kKeySize]) {
  crypto::kdf(initiatorSend, initiatorReceive, nullptr, c, nullptr, 0);
}

}  // namespace

const uint8_t* initialChainingKey() { return constants().chainingKey; }
const uint8_t* initialHash() { return constants().hash; }

void InitiatorState::clear() {
  active = false;
  localIndex = 0;
  crypto::wipe(chainingKey, sizeof chainingKey);
  crypto::wipe(hash, sizeof hash);
  ephemeral.clear();
}

bool createInitiation(const crypto::X25519Key& local, const PeerKeys& peer, uint32_t localIndex,
                      const uint8_t timestamp[kTai64nSize], uint8_t msg[kInitiationSize], InitiatorState* state) {
  state->clear();
  if (!peer.staticStaticValid || !local.loaded()) return false;
  if (!state->ephemeral.generate()) return false;
  uint8_t* c = state->chainingKey;
  uint8_t* h = state->hash;
  const uint8_t* ephemeralPublic = state->ephemeral.publicKey();

  std::memset(msg, 0, kInitiationSize);
  msg[0] = 1;
  put32le(msg + kInitSender, localIndex);
  std::memcpy(msg + kInitEphemeral, ephemeralPublic, kKeySize);

  startHash(h, peer.remoteStatic);
  std::memcpy(c, constants().chainingKey, kHashSize);
  mixKey(c, ephemeralPublic, kKeySize);
  mixHash(h, ephemeralPublic, kKeySize);

  // es: DH(E_i, S_r)
  uint8_t dh[kKeySize], key[kKeySize];
  bool ok = state->ephemeral.derive(dh, peer.remoteStatic);
  if (ok) {
    mixKeyAndKey(c, key, dh, kKeySize);
    ok = crypto::aeadSeal(msg + kInitStatic, key, 0, local.publicKey(), kKeySize, h, kHashSize);
  }
  if (ok) {
    mixHash(h, msg + kInitStatic, kKeySize + kTagSize);
    // ss: DH(S_i, S_r), precomputed
    mixKeyAndKey(c, key, peer.staticStatic, kKeySize);
    ok = crypto::aeadSeal(msg + kInitTimestamp, key, 0, timestamp, kTai64nSize, h, kHashSize);
  }
  crypto::wipe(dh, sizeof dh);
  crypto::wipe(key, sizeof key);
  if (!ok) {
    state->clear();
    return false;
  }
  mixHash(h, msg + kInitTimestamp, kTai64nSize + kTagSize);
  state->localIndex = localIndex;
  state->active = true;
  return true;
}

bool openStatic(const crypto::X25519Key& local, const uint8_t msg[kInitiationSize], ConsumedInitiation* out) {
  if (!local.loaded() || msg[0] != 1) return false;
  uint8_t* c = out->chainingKey;
  uint8_t* h = out->hash;
  out->remoteIndex = get32le(msg + kInitSender);
  std::memcpy(out->remoteEphemeral, msg + kInitEphemeral, kKeySize);

  startHash(h, local.publicKey());
  std::memcpy(c, constants().chainingKey, kHashSize);
  mixKey(c, out->remoteEphemeral, kKeySize);
  mixHash(h, out->remoteEphemeral, kKeySize);

  // es: DH(S_r, E_i)
  uint8_t dh[kKeySize], key[kKeySize];
  bool ok = local.derive(dh, out->remoteEphemeral);
  if (ok) {
    mixKeyAndKey(c, key, dh, kKeySize);
    ok = crypto::aeadOpen(out->remoteStatic, key, 0, msg + kInitStatic, kKeySize + kTagSize, h, kHashSize);
  }
  crypto::wipe(dh, sizeof dh);
  crypto::wipe(key, sizeof key);
  if (!ok) return false;
  mixHash(h, msg + kInitStatic, kKeySize + kTagSize);
  return true;
}

bool openTimestamp(const PeerKeys& peer, const uint8_t msg[kInitiationSize], ConsumedInitiation* inout) {
  if (!peer.staticStaticValid || !crypto::equal(peer.remoteStatic, inout->remoteStatic, kKeySize)) return false;
  uint8_t* c = inout->chainingKey;
  uint8_t* h = inout->hash;
  uint8_t key[kKeySize];
  mixKeyAndKey(c, key, peer.staticStatic, kKeySize);
  bool ok = crypto::aeadOpen(inout->timestamp, key, 0, msg + kInitTimestamp, kTai64nSize + kTagSize, h, kHashSize);
  crypto::wipe(key, sizeof key);
  if (!ok) return false;
  mixHash(h, msg + kInitTimestamp, kTai64nSize + kTagSize);
  return true;
}

bool createResponse(const ConsumedInitiation& in, const PeerKeys& peer, uint32_t localIndex, uint8_t msg[kResponseSize],
                    SessionKeys* keys) {
  if (!crypto::equal(peer.remoteStatic, in.remoteStatic, kKeySize)) return false;
  crypto::X25519Key ephemeral;
  if (!ephemeral.generate()) return false;
  uint8_t c[kHashSize], h[kHashSize], ee[kKeySize], se[kKeySize], key[kKeySize];
  std::memcpy(c, in.chainingKey, kHashSize);
  std::memcpy(h, in.hash, kHashSize);
  std::memset(msg, 0, kResponseSize);
  msg[0] = 2;
  put32le(msg + kRespSender, localIndex);
  put32le(msg + kRespReceiver, in.remoteIndex);
  std::memcpy(msg + kRespEphemeral, ephemeral.publicKey(), kKeySize);

  bool ok = ephemeral.derive(ee, in.remoteEphemeral) && ephemeral.derive(se, in.remoteStatic);
  if (ok) {
    mixResponse(c, h, ephemeral.publicKey(), ee, se, peer.presharedKey, key);
    ok = crypto::aeadSeal(msg + kRespEmpty, key, 0, nullptr, 0, h, kHashSize);
  }
  // The transcript would end with H = HASH(H || enc_empty); nothing is derived from it.
  if (ok) {
    deriveTransport(c, keys->receiveKey, keys->sendKey);  // swapped: we are the responder
    keys->localIndex = localIndex;
    keys->remoteIndex = in.remoteIndex;
  }
  crypto::wipe(c, sizeof c);
  crypto::wipe(h, sizeof h);
  crypto::wipe(ee, sizeof ee);
  crypto::wipe(se, sizeof se);
  crypto::wipe(key, sizeof key);
  return ok;
}

bool consumeResponse(const crypto::X25519Key& local, const PeerKeys& peer, InitiatorState* state,
                     const uint8_t msg[kResponseSize], SessionKeys* keys) {
  if (!state->active || msg[0] != 2 || get32le(msg + kRespReceiver) != state->localIndex || !local.loaded())
    return false;
  const uint8_t* responderEphemeral = msg + kRespEphemeral;
  uint8_t c[kHashSize], h[kHashSize], ee[kKeySize], se[kKeySize], key[kKeySize], empty[1];
  std::memcpy(c, state->chainingKey, kHashSize);
  std::memcpy(h, state->hash, kHashSize);
  bool ok = state->ephemeral.derive(ee, responderEphemeral) && local.derive(se, responderEphemeral);
  if (ok) {
    mixResponse(c, h, responderEphemeral, ee, se, peer.presharedKey, key);
    ok = crypto::aeadOpen(empty, key, 0, msg + kRespEmpty, kTagSize, h, kHashSize);
  }
  if (ok) {
    deriveTransport(c, keys->sendKey, keys->receiveKey);
    keys->localIndex = state->localIndex;
    keys->remoteIndex = get32le(msg + kRespSender);
    state->clear();
  }
  crypto::wipe(c, sizeof c);
  crypto::wipe(h, sizeof h);
  crypto::wipe(ee, sizeof ee);
  crypto::wipe(se, sizeof se);
  crypto::wipe(key, sizeof key);
  return ok;
}

}  // namespace noise
}  // namespace weft
