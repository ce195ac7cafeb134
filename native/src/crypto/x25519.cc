// X25519 (RFC 7748) through the OpenSSL inside the Node binary, plus the small memory and
// randomness helpers the handshake code shares: clamp, randomBytes, equal, wipe.
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "primitives.h"

namespace weft {
namespace crypto {

bool equal(const uint8_t* a, const uint8_t* b, size_t len) { return CRYPTO_memcmp(a, b, len) == 0; }

void wipe(void* p, size_t len) {
  // OPENSSL_cleanse writes through a volatile function pointer, so the store is not removed as
  // dead even when the buffer is never read again (which is exactly when we wipe it).
  if (len > 0) OPENSSL_cleanse(p, len);
}

void randomBytes(uint8_t* out, size_t len) {
  // RAND_bytes takes an int; handshake callers ask for at most 32 bytes, but chunk anyway.
  while (len > 0) {
    int n = len > INT_MAX ? INT_MAX : static_cast<int>(len);
    // Without randomness every key and nonce would be predictable: there is no safe way on.
    if (RAND_bytes(out, n) != 1) std::abort();
    out += n;
    len -= static_cast<size_t>(n);
  }
}

void clamp(uint8_t key[kKeySize]) {
  // RFC 7748 §5: clear the cofactor bits (a multiple of 8 kills small-subgroup components), clear
  // bit 255 and set bit 254 (a fixed ladder length, so timing does not depend on the key).
  key[0] &= 248;
  key[31] = static_cast<uint8_t>((key[31] & 127) | 64);
}

namespace {

// Constant time: a secret-dependent early exit would tell an attacker which bytes of the shared
// secret are zero.
bool allZero(const uint8_t* p, size_t len) {
  uint8_t acc = 0;
  for (size_t i = 0; i < len; ++i) acc |= p[i];
  return acc == 0;
}

}  // namespace

X25519Key::~X25519Key() { clear(); }

void X25519Key::clear() {
  // EVP_PKEY_free cleanses the private key of provider keys (ossl_ecx_key_free).
  EVP_PKEY_free(key_);
  key_ = nullptr;
  std::memset(public_, 0, sizeof(public_));
}

bool X25519Key::load(const uint8_t privateKey[kKeySize]) {
  // OpenSSL clamps internally when it multiplies, but the stored scalar is clamped here as the
  // reference asks, so the key is the same whichever way it is later exported or compared.
  uint8_t clamped[kKeySize];
  std::memcpy(clamped, privateKey, kKeySize);
  clamp(clamped);
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, clamped, kKeySize);
  wipe(clamped, sizeof(clamped));
  if (key == nullptr) {
    ERR_clear_error();
    return false;
  }
  // OpenSSL computes the public key when a raw private key is loaded; reading it is a copy.
  uint8_t pub[kKeySize];
  size_t pubLen = sizeof(pub);
  if (EVP_PKEY_get_raw_public_key(key, pub, &pubLen) != 1 || pubLen != kKeySize) {
    EVP_PKEY_free(key);
    ERR_clear_error();
    return false;
  }
  // Replace the previous key only once the new one is complete: a failed load leaves it intact.
  clear();
  key_ = key;
  std::memcpy(public_, pub, kKeySize);
  return true;
}

bool X25519Key::generate() {
  uint8_t secret[kKeySize];
  randomBytes(secret, sizeof(secret));
  bool ok = load(secret);
  wipe(secret, sizeof(secret));
  return ok;
}

bool X25519Key::derive(uint8_t out[kKeySize], const uint8_t peerPublic[kKeySize]) const {
  if (key_ == nullptr) return false;
  // OpenSSL derives only between EVP_PKEYs, so the peer key is built per call, and so is the
  // context: a cached one would be per thread (derive runs on several threads at once) and
  // would hold a reference that keeps the private key alive after clear(). Measured with
  // Node 24's OpenSSL: about 0.65 us for the peer key and 0.35 us for the context, against
  // 23.5 us for the scalar multiplication; a context reused across calls saved nothing visible.
  EVP_PKEY* peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peerPublic, kKeySize);
  EVP_PKEY_CTX* ctx = peer != nullptr ? EVP_PKEY_CTX_new_from_pkey(nullptr, key_, nullptr) : nullptr;
  size_t outLen = kKeySize;
  // validate_peer = 0: OpenSSL's check of an X25519 public key looks only at its length and
  // presence (ecx_validate), never at the point; low-order keys are caught on the result.
  bool ok = ctx != nullptr && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer_ex(ctx, peer, 0) == 1 &&
            EVP_PKEY_derive(ctx, out, &outLen) == 1 && outLen == kKeySize;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  // OpenSSL itself refuses an all-zero X25519 result (RFC 7748 §6.1 "MAY check"), but that is a
  // choice of this OpenSSL build and provider; WireGuard requires the refusal, so it is checked
  // here whatever OpenSSL did.
  if (ok && allZero(out, kKeySize)) ok = false;
  if (!ok) {
    wipe(out, kKeySize);
    // Leave no entries on this thread's error queue for an unrelated later OpenSSL user
    // (node:crypto on the JS thread) to report.
    ERR_clear_error();
  }
  return ok;
}

}  // namespace crypto
}  // namespace weft
