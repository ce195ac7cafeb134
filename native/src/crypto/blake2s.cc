// BLAKE2s (RFC 7693) and the constructions WireGuard builds on it: HASH, the keyed 16-byte MAC,
// HMAC-BLAKE2s (RFC 2104) and the Noise KDF (reference §4.1).
//
// Written here rather than taken from OpenSSL because OpenSSL's EVP_MD "BLAKE2S-256" is unkeyed
// with a fixed 32-byte digest, while WireGuard's MAC needs the keyed mode with a 16-byte digest
// (both are parameters of the hash itself, so neither can be emulated by truncation).
#include <cstdlib>
#include <cstring>
#include <utility>

#include "primitives.h"

namespace weft {
namespace crypto {
namespace {

constexpr size_t kBlockSize = 64;

// RFC 7693 §2.6: the SHA-256 initial values.
constexpr uint32_t kIv[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                             0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

// RFC 7693 §2.7: the message word schedule of each of the ten rounds.
constexpr uint8_t kSigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

inline uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

// RFC 7693 §3.1, with BLAKE2s's rotation distances (16, 12, 8, 7).
inline void mix(uint32_t v[16], int a, int b, int c, int d, uint32_t x, uint32_t y) {
  v[a] = v[a] + v[b] + x;
  v[d] = rotr(v[d] ^ v[a], 16);
  v[c] = v[c] + v[d];
  v[b] = rotr(v[b] ^ v[c], 12);
  v[a] = v[a] + v[b] + y;
  v[d] = rotr(v[d] ^ v[a], 8);
  v[c] = v[c] + v[d];
  v[b] = rotr(v[b] ^ v[c], 7);
}

// One round (RFC 7693 §3.2) with its schedule row as a template argument: with every index a
// constant, the compiler can keep more of v and m in registers than with a loop over kSigma
// (measured: a 116-byte MAC about 340 ns with the loop, 275 ns like this).
template <size_t R>
inline void round(uint32_t v[16], const uint32_t m[16]) {
  constexpr const uint8_t* s = kSigma[R];
  mix(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
  mix(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
  mix(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
  mix(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
  mix(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
  mix(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
  mix(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
  mix(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
}

template <size_t... R>
inline void rounds(uint32_t v[16], const uint32_t m[16], std::index_sequence<R...>) {
  (round<R>(v, m), ...);
}

}  // namespace

Blake2s::Blake2s(size_t outLen, const uint8_t* key, size_t keyLen) : t_{0, 0}, bufLen_(0), outLen_(outLen) {
  // The parameters are compile-time constants at every call site; a wrong one is a programming
  // error that would silently produce a different hash, so it stops the process.
  if (outLen < 1 || outLen > kHashSize || keyLen > kKeySize || (keyLen > 0 && key == nullptr)) std::abort();
  std::memcpy(h_, kIv, sizeof(h_));
  // RFC 7693 §2.5: the parameter block of sequential mode reduces to the digest and key lengths
  // (fanout = depth = 1) folded into the first word.
  h_[0] ^= 0x01010000u ^ (static_cast<uint32_t>(keyLen) << 8) ^ static_cast<uint32_t>(outLen);
  std::memset(buf_, 0, sizeof(buf_));
  if (keyLen > 0) {
    // §3.3: the key, zero-padded, is a whole first block. It stays buffered like data, so that a
    // keyed hash of the empty message compresses it as the final block.
    std::memcpy(buf_, key, keyLen);
    bufLen_ = kBlockSize;
  }
}

Blake2s::~Blake2s() {
  // h_ is a function of the key, buf_ may still hold it (or message bytes).
  wipe(h_, sizeof(h_));
  wipe(buf_, sizeof(buf_));
}

void Blake2s::compress(bool last) {
  uint32_t m[16];
  uint32_t v[16];
  for (int i = 0; i < 16; ++i) m[i] = load32(buf_ + 4 * i);
  for (int i = 0; i < 8; ++i) {
    v[i] = h_[i];
    v[i + 8] = kIv[i];
  }
  v[12] ^= t_[0];
  v[13] ^= t_[1];
  if (last) v[14] = ~v[14];
  rounds(v, m, std::make_index_sequence<10>());
  for (int i = 0; i < 8; ++i) h_[i] ^= v[i] ^ v[i + 8];
  // m is the key itself in a keyed hash's first block, and v a function of it. Wiping both
  // costs about 4% of a compression (measured), cheap enough not to leave them on the stack.
  wipe(m, sizeof(m));
  wipe(v, sizeof(v));
}

Blake2s& Blake2s::update(const uint8_t* data, size_t len) {
  while (len > 0) {
    // A full buffer is compressed only once more input proves it is not the last block: the
    // final block must be compressed with the finalisation flag, and it may be a full one.
    if (bufLen_ == kBlockSize) {
      t_[0] += kBlockSize;
      if (t_[0] < kBlockSize) ++t_[1];
      compress(false);
      bufLen_ = 0;
    }
    size_t n = kBlockSize - bufLen_;
    if (n > len) n = len;
    std::memcpy(buf_ + bufLen_, data, n);
    bufLen_ += n;
    data += n;
    len -= n;
  }
  return *this;
}

void Blake2s::final(uint8_t* out) {
  // The counter counts message bytes (the key block included), not padding.
  t_[0] += static_cast<uint32_t>(bufLen_);
  if (t_[0] < bufLen_) ++t_[1];
  std::memset(buf_ + bufLen_, 0, kBlockSize - bufLen_);
  compress(true);
  // Little-endian words, truncated to the digest length (which the parameter block already bound).
  uint8_t digest[kHashSize];
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) digest[4 * i + j] = static_cast<uint8_t>(h_[i] >> (8 * j));
  std::memcpy(out, digest, outLen_);
  wipe(digest, sizeof(digest));
  wipe(h_, sizeof(h_));
  wipe(buf_, sizeof(buf_));
  bufLen_ = 0;
}

void hash(uint8_t out[kHashSize], const uint8_t* a, size_t aLen, const uint8_t* b, size_t bLen) {
  // All input is absorbed before final() writes, so `out` may alias `a` or `b` (H = HASH(H || x)).
  Blake2s h;
  h.update(a, aLen);
  if (bLen > 0) h.update(b, bLen);
  h.final(out);
}

void mac(uint8_t out[kMacSize], const uint8_t* key, size_t keyLen, const uint8_t* data, size_t len) {
  Blake2s(kMacSize, key, keyLen).update(data, len).final(out);
}

void hmac(uint8_t out[kHashSize], const uint8_t* key, size_t keyLen, const uint8_t* data, size_t len) {
  constexpr uint8_t kInnerPad = 0x36;
  constexpr uint8_t kOuterPad = 0x5c;
  // RFC 2104 §2: a key longer than the block is replaced by its hash, then zero-padded to B = 64
  // bytes (so any key up to 64 bytes gives the same MAC as itself zero-extended).
  uint8_t block[kBlockSize] = {};
  if (keyLen > kBlockSize)
    hash(block, key, keyLen);
  else if (keyLen > 0)
    std::memcpy(block, key, keyLen);
  // The key is fully copied before anything is written, so `out` may alias `key` or `data`.
  uint8_t inner[kHashSize];
  for (uint8_t& b : block) b ^= kInnerPad;
  Blake2s().update(block, kBlockSize).update(data, len).final(inner);
  for (uint8_t& b : block) b ^= kInnerPad ^ kOuterPad;
  Blake2s().update(block, kBlockSize).update(inner, kHashSize).final(out);
  wipe(block, sizeof(block));
  wipe(inner, sizeof(inner));
}

void kdf(uint8_t t1[kHashSize], uint8_t* t2, uint8_t* t3, const uint8_t key[kHashSize], const uint8_t* input,
         size_t len) {
  // prk is the extracted secret every output depends on; t and block carry the previous output.
  uint8_t prk[kHashSize];
  uint8_t t[kHashSize];
  uint8_t block[kHashSize + 1];
  // key and input are consumed here, before any output is written: callers update the chaining
  // key in place (kdf(c, k, nullptr, c, ...)), so t1 may alias key, and any output may alias input.
  hmac(prk, key, kHashSize, input, len);
  block[0] = 0x01;
  hmac(t, prk, kHashSize, block, 1);
  std::memcpy(t1, t, kHashSize);
  if (t2 != nullptr || t3 != nullptr) {
    // t3 needs t2 as input, so t2 is computed even when only t3 is wanted.
    std::memcpy(block, t, kHashSize);
    block[kHashSize] = 0x02;
    hmac(t, prk, kHashSize, block, sizeof(block));
    if (t2 != nullptr) std::memcpy(t2, t, kHashSize);
  }
  if (t3 != nullptr) {
    std::memcpy(block, t, kHashSize);
    block[kHashSize] = 0x03;
    hmac(t, prk, kHashSize, block, sizeof(block));
    std::memcpy(t3, t, kHashSize);
  }
  wipe(prk, sizeof(prk));
  wipe(t, sizeof(t));
  wipe(block, sizeof(block));
}

}  // namespace crypto
}  // namespace weft
