// ChaCha20-Poly1305 (RFC 7539) as WireGuard's transport uses it: 32-byte key, nonce = 4 zero bytes
// followed by the 64-bit counter in little-endian order, no associated data, 16-byte tag after the
// ciphertext. Backed by OpenSSL's EVP interface (the symbols come from the Node binary). Each thread
// keeps its own pair of reusable cipher contexts (Aead::local()).
#pragma once

#include <cstddef>
#include <cstdint>

#include "constants.h"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace weft {

class Aead {
 public:
  Aead();
  ~Aead();
  Aead(const Aead&) = delete;
  Aead& operator=(const Aead&) = delete;

  /** The calling thread's instance. */
  static Aead& local();

  /**
   * Encrypts `len` bytes of `in` into `out` (which may equal `in`) and appends the tag:
   * `out` must have room for len + 16 bytes. False only if OpenSSL fails.
   */
  bool seal(const uint8_t* key, uint64_t counter, const uint8_t* in, size_t len, uint8_t* out);

  /**
   * Authenticates and decrypts `len` bytes (ciphertext followed by the tag) of `in` into `out`
   * (which may equal `in`), writing len - 16 bytes. False when the tag does not verify or
   * len < 16; `out` then holds garbage.
   */
  bool open(const uint8_t* key, uint64_t counter, const uint8_t* in, size_t len, uint8_t* out);

 private:
  EVP_CIPHER_CTX* seal_;
  EVP_CIPHER_CTX* open_;
};

}  // namespace weft
