// The handshake's cryptographic primitives (reference §4.1), for the addon's handshake threads:
// BLAKE2s (HASH, the keyed 16-byte MAC, HMAC-BLAKE2s and the Noise KDF), X25519, ChaCha20-Poly1305
// with associated data, XChaCha20-Poly1305 for cookie replies, and TAI64N.
//
// BLAKE2s and HChaCha20 are written here from RFC 7693 and draft-irtf-cfrg-xchacha: OpenSSL offers
// BLAKE2s only with a 32-byte unkeyed digest through EVP_MD and has no XChaCha20. X25519 and
// ChaCha20-Poly1305 come from the OpenSSL inside the Node binary (its symbols are exported).
#pragma once

#include <cstddef>
#include <cstdint>

typedef struct evp_pkey_st EVP_PKEY;

namespace weft {
namespace crypto {

constexpr size_t kHashSize = 32;
constexpr size_t kMacSize = 16;
constexpr size_t kKeySize = 32;
constexpr size_t kTagSize = 16;
constexpr size_t kXNonceSize = 24;
constexpr size_t kTai64nSize = 12;

/** Incremental BLAKE2s with an output of 1..32 bytes and an optional key of 0..32 bytes. */
class Blake2s {
 public:
  explicit Blake2s(size_t outLen = kHashSize, const uint8_t* key = nullptr, size_t keyLen = 0);
  ~Blake2s();
  Blake2s& update(const uint8_t* data, size_t len);
  /** Writes outLen bytes. The object is spent afterwards. */
  void final(uint8_t* out);

 private:
  void compress(bool last);
  uint32_t h_[8];
  uint32_t t_[2];
  uint8_t buf_[64];
  size_t bufLen_;
  size_t outLen_;
};

/** HASH(a || b): BLAKE2s-256. */
void hash(uint8_t out[kHashSize], const uint8_t* a, size_t aLen, const uint8_t* b = nullptr, size_t bLen = 0);
/** MAC(key, data): keyed BLAKE2s with a 16-byte digest. */
void mac(uint8_t out[kMacSize], const uint8_t* key, size_t keyLen, const uint8_t* data, size_t len);
/** HMAC-BLAKE2s (RFC 2104, 64-byte block). */
void hmac(uint8_t out[kHashSize], const uint8_t* key, size_t keyLen, const uint8_t* data, size_t len);
/** The Noise KDF: t1..tn from HMAC(HMAC(key, input), ...). Any of t2, t3 may be null (not wanted). */
void kdf(uint8_t t1[kHashSize], uint8_t* t2, uint8_t* t3, const uint8_t key[kHashSize], const uint8_t* input,
         size_t len);

/** Constant-time equality. */
bool equal(const uint8_t* a, const uint8_t* b, size_t len);
/** Overwrites memory in a way the compiler keeps. */
void wipe(void* p, size_t len);
/** Cryptographically secure random bytes (OpenSSL's RAND_bytes); aborts the process if it fails. */
void randomBytes(uint8_t* out, size_t len);

/** sk[0] &= 248; sk[31] = (sk[31] & 127) | 64. */
void clamp(uint8_t key[kKeySize]);

/**
 * An X25519 private key with its public key, ready to derive with many peers (OpenSSL computes the
 * public key when the key is loaded, so loading once and deriving many times costs one scalar
 * multiplication per derivation).
 */
class X25519Key {
 public:
  X25519Key() = default;
  ~X25519Key();
  X25519Key(const X25519Key&) = delete;
  X25519Key& operator=(const X25519Key&) = delete;

  /** Loads (a clamped copy of) `privateKey`; false if OpenSSL refuses it. */
  bool load(const uint8_t privateKey[kKeySize]);
  /** A fresh random key. */
  bool generate();
  bool loaded() const { return key_ != nullptr; }
  const uint8_t* publicKey() const { return public_; }
  /** DH(this, peerPublic). False on an all-zero result (a low-order peer key) or an OpenSSL error. */
  bool derive(uint8_t out[kKeySize], const uint8_t peerPublic[kKeySize]) const;
  void clear();

 private:
  EVP_PKEY* key_ = nullptr;
  uint8_t public_[kKeySize] = {};
};

/**
 * ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce (4 zero bytes, counter little-endian) and
 * associated data. Seal writes len + 16 bytes to `out`; open takes len >= 16 (ciphertext + tag)
 * and writes len - 16. `out` may equal `in`. False on a bad tag or an OpenSSL failure.
 */
bool aeadSeal(uint8_t* out, const uint8_t key[kKeySize], uint64_t counter, const uint8_t* in, size_t len,
              const uint8_t* ad, size_t adLen);
bool aeadOpen(uint8_t* out, const uint8_t key[kKeySize], uint64_t counter, const uint8_t* in, size_t len,
              const uint8_t* ad, size_t adLen);

/** HChaCha20 (draft-irtf-cfrg-xchacha §2.2): a 32-byte subkey from a key and a 16-byte nonce. */
void hchacha20(uint8_t out[kKeySize], const uint8_t key[kKeySize], const uint8_t nonce[16]);
/** XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §2.3), same conventions as aeadSeal/aeadOpen. */
bool xaeadSeal(uint8_t* out, const uint8_t key[kKeySize], const uint8_t nonce[kXNonceSize], const uint8_t* in,
               size_t len, const uint8_t* ad, size_t adLen);
bool xaeadOpen(uint8_t* out, const uint8_t key[kKeySize], const uint8_t nonce[kXNonceSize], const uint8_t* in,
               size_t len, const uint8_t* ad, size_t adLen);

/**
 * TAI64N of the wall clock now: 8 bytes big-endian seconds + 2^62 + 10, 4 bytes big-endian
 * nanoseconds rounded down to a multiple of 2^24 (no precise clock leaks to the responder).
 */
void tai64nNow(uint8_t out[kTai64nSize]);

}  // namespace crypto
}  // namespace weft
