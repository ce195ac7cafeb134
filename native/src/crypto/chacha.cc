// ChaCha20-Poly1305 with associated data (RFC 8439) through OpenSSL, and XChaCha20-Poly1305
// (draft-irtf-cfrg-xchacha-03) built on it with an HChaCha20 written here: OpenSSL has no
// XChaCha20, and HChaCha20 is just the ChaCha20 block function without its final addition.
#include <openssl/err.h>
#include <openssl/evp.h>

#include <climits>
#include <cstring>

#include "primitives.h"

namespace weft {
namespace crypto {
namespace {

constexpr size_t kNonceSize = 12;

// Fetched once: with OpenSSL 3 an explicitly fetched cipher spares every initialisation an
// implicit fetch (a lookup under a lock in the method store).
const EVP_CIPHER* chachaPoly() {
  static const EVP_CIPHER* cipher = [] {
    EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    return fetched != nullptr ? static_cast<const EVP_CIPHER*>(fetched) : EVP_chacha20_poly1305();
  }();
  return cipher;
}

// One sealing and one opening context per thread, reused for every message (as the packet
// path's Aead does): a fresh context would add about a fifth to sealing a 12-byte timestamp
// (measured: 77 ns to make one, 366 ns to seal). thread_local destructors free them at thread exit.
class Contexts {
 public:
  Contexts() : seal_(make(1)), open_(make(0)) {}
  ~Contexts() {
    EVP_CIPHER_CTX_free(seal_);
    EVP_CIPHER_CTX_free(open_);
  }
  Contexts(const Contexts&) = delete;
  Contexts& operator=(const Contexts&) = delete;
  EVP_CIPHER_CTX* seal() const { return seal_; }
  EVP_CIPHER_CTX* open() const { return open_; }

  static Contexts& local() {
    thread_local Contexts contexts;
    return contexts;
  }

 private:
  // A null context (allocation or initialisation failure) makes every operation on it fail,
  // which the callers already handle as "false".
  static EVP_CIPHER_CTX* make(int encrypt) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (ctx != nullptr && EVP_CipherInit_ex2(ctx, chachaPoly(), nullptr, nullptr, encrypt, nullptr) != 1) {
      EVP_CIPHER_CTX_free(ctx);
      ERR_clear_error();
      ctx = nullptr;
    }
    return ctx;
  }
  EVP_CIPHER_CTX* seal_;
  EVP_CIPHER_CTX* open_;
};

// The AEAD with an explicit 12-byte nonce, for both WireGuard's counter nonce and XChaCha's
// 4 zero bytes || last 8 bytes of the extended nonce.
bool sealWithNonce(uint8_t* out, const uint8_t key[kKeySize], const uint8_t nonce[kNonceSize], const uint8_t* in,
                   size_t len, const uint8_t* ad, size_t adLen) {
  EVP_CIPHER_CTX* ctx = Contexts::local().seal();
  if (ctx == nullptr || len > INT_MAX || adLen > INT_MAX) return false;
  int n = 0;
  // Final never produces bytes for a stream cipher; a scratch pointer keeps it off a null `out`.
  uint8_t scratch[kTagSize];
  bool ok = EVP_EncryptInit_ex2(ctx, nullptr, key, nonce, nullptr) == 1 &&
            // A null output pointer marks the input as associated data; it must precede the text.
            (adLen == 0 || EVP_EncryptUpdate(ctx, nullptr, &n, ad, static_cast<int>(adLen)) == 1) &&
            (len == 0 || EVP_EncryptUpdate(ctx, out, &n, in, static_cast<int>(len)) == 1) &&
            EVP_EncryptFinal_ex(ctx, scratch, &n) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, static_cast<int>(kTagSize), out + len) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

bool openWithNonce(uint8_t* out, const uint8_t key[kKeySize], const uint8_t nonce[kNonceSize], const uint8_t* in,
                   size_t len, const uint8_t* ad, size_t adLen) {
  EVP_CIPHER_CTX* ctx = Contexts::local().open();
  if (ctx == nullptr || len < kTagSize || len - kTagSize > INT_MAX || adLen > INT_MAX) return false;
  size_t textLen = len - kTagSize;
  // The tag is copied out first: with out == in, decryption overwrites the bytes before it, and
  // OpenSSL reads the expected tag only at Final.
  uint8_t tag[kTagSize];
  std::memcpy(tag, in + textLen, kTagSize);
  int n = 0;
  uint8_t scratch[kTagSize];
  bool ok = EVP_DecryptInit_ex2(ctx, nullptr, key, nonce, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, static_cast<int>(kTagSize), tag) == 1 &&
            (adLen == 0 || EVP_DecryptUpdate(ctx, nullptr, &n, ad, static_cast<int>(adLen)) == 1) &&
            (textLen == 0 || EVP_DecryptUpdate(ctx, out, &n, in, static_cast<int>(textLen)) == 1) &&
            EVP_DecryptFinal_ex(ctx, scratch, &n) == 1;
  if (!ok) {
    // The plaintext was written before the tag was checked: leave no unauthenticated bytes
    // behind for a caller that ignores the result.
    wipe(out, textLen);
    ERR_clear_error();
  }
  return ok;
}

// WireGuard's nonce (reference §4.1): 4 zero bytes, then the counter little-endian.
void counterNonce(uint8_t nonce[kNonceSize], uint64_t counter) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(counter >> (8 * i));
}

inline uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

inline uint32_t load32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

inline void store32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// RFC 8439 §2.1.
inline void quarterRound(uint32_t s[16], int a, int b, int c, int d) {
  s[a] += s[b];
  s[d] = rotl(s[d] ^ s[a], 16);
  s[c] += s[d];
  s[b] = rotl(s[b] ^ s[c], 12);
  s[a] += s[b];
  s[d] = rotl(s[d] ^ s[a], 8);
  s[c] += s[d];
  s[b] = rotl(s[b] ^ s[c], 7);
}

// XChaCha's derived nonce: the last 8 bytes of the extended nonce behind 4 zero bytes.
void xNonce(uint8_t nonce[kNonceSize], const uint8_t xnonce[kXNonceSize]) {
  std::memset(nonce, 0, 4);
  std::memcpy(nonce + 4, xnonce + 16, 8);
}

}  // namespace

bool aeadSeal(uint8_t* out, const uint8_t key[kKeySize], uint64_t counter, const uint8_t* in, size_t len,
              const uint8_t* ad, size_t adLen) {
  uint8_t nonce[kNonceSize];
  counterNonce(nonce, counter);
  return sealWithNonce(out, key, nonce, in, len, ad, adLen);
}

bool aeadOpen(uint8_t* out, const uint8_t key[kKeySize], uint64_t counter, const uint8_t* in, size_t len,
              const uint8_t* ad, size_t adLen) {
  uint8_t nonce[kNonceSize];
  counterNonce(nonce, counter);
  return openWithNonce(out, key, nonce, in, len, ad, adLen);
}

void hchacha20(uint8_t out[kKeySize], const uint8_t key[kKeySize], const uint8_t nonce[16]) {
  // draft-irtf-cfrg-xchacha-03 §2.2: the ChaCha20 state with the 16-byte nonce in place of the
  // block counter and nonce words, 20 rounds, and then (unlike the block function) no addition
  // of the input state. Only words 0..3 and 12..15 are output: they started as the public
  // constants and nonce, so the missing addition would have added nothing secret there, while
  // the key words, the ones that would let the rounds be run backwards, are never output.
  uint32_t s[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};  // "expand 32-byte k"
  for (int i = 0; i < 8; ++i) s[4 + i] = load32(key + 4 * i);
  for (int i = 0; i < 4; ++i) s[12 + i] = load32(nonce + 4 * i);
  for (int round = 0; round < 10; ++round) {
    // A column round, then a diagonal round: two of the twenty rounds.
    quarterRound(s, 0, 4, 8, 12);
    quarterRound(s, 1, 5, 9, 13);
    quarterRound(s, 2, 6, 10, 14);
    quarterRound(s, 3, 7, 11, 15);
    quarterRound(s, 0, 5, 10, 15);
    quarterRound(s, 1, 6, 11, 12);
    quarterRound(s, 2, 7, 8, 13);
    quarterRound(s, 3, 4, 9, 14);
  }
  for (int i = 0; i < 4; ++i) {
    store32(out + 4 * i, s[i]);
    store32(out + 16 + 4 * i, s[12 + i]);
  }
  wipe(s, sizeof(s));  // the whole state is key material
}

bool xaeadSeal(uint8_t* out, const uint8_t key[kKeySize], const uint8_t nonce[kXNonceSize], const uint8_t* in,
               size_t len, const uint8_t* ad, size_t adLen) {
  // §2.3: the first 16 nonce bytes pick a subkey, the last 8 are ChaCha20-Poly1305's nonce.
  uint8_t subkey[kKeySize];
  uint8_t n12[kNonceSize];
  hchacha20(subkey, key, nonce);
  xNonce(n12, nonce);
  bool ok = sealWithNonce(out, subkey, n12, in, len, ad, adLen);
  wipe(subkey, sizeof(subkey));
  return ok;
}

bool xaeadOpen(uint8_t* out, const uint8_t key[kKeySize], const uint8_t nonce[kXNonceSize], const uint8_t* in,
               size_t len, const uint8_t* ad, size_t adLen) {
  uint8_t subkey[kKeySize];
  uint8_t n12[kNonceSize];
  hchacha20(subkey, key, nonce);
  xNonce(n12, nonce);
  bool ok = openWithNonce(out, subkey, n12, in, len, ad, adLen);
  wipe(subkey, sizeof(subkey));
  return ok;
}

}  // namespace crypto
}  // namespace weft
