#include "aead.h"

#include <openssl/evp.h>

#include <climits>
#include <cstring>
#include <mutex>
#include <new>

namespace weft {
namespace {

// Fetched once: with OpenSSL 3 an explicitly fetched cipher avoids an implicit fetch on every
// initialisation of a context.
const EVP_CIPHER* chachaPoly() {
  static const EVP_CIPHER* cipher = [] {
    EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "ChaCha20-Poly1305", nullptr);
    return fetched ? static_cast<const EVP_CIPHER*>(fetched) : EVP_chacha20_poly1305();
  }();
  return cipher;
}

void makeNonce(uint64_t counter, unsigned char nonce[12]) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<unsigned char>(counter >> (8 * i));
}

EVP_CIPHER_CTX* newContext(int encrypt) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (!ctx) throw std::bad_alloc();
  if (EVP_CipherInit_ex2(ctx, chachaPoly(), nullptr, nullptr, encrypt, nullptr) != 1) {
    EVP_CIPHER_CTX_free(ctx);
    throw std::bad_alloc();
  }
  return ctx;
}

}  // namespace

Aead::Aead() : seal_(newContext(1)), open_(nullptr) {
  try {
    open_ = newContext(0);
  } catch (...) {
    EVP_CIPHER_CTX_free(seal_);
    throw;
  }
}

Aead::~Aead() {
  EVP_CIPHER_CTX_free(seal_);
  EVP_CIPHER_CTX_free(open_);
}

Aead& Aead::local() {
  thread_local Aead instance;
  return instance;
}

bool Aead::seal(const uint8_t* key, uint64_t counter, const uint8_t* in, size_t len, uint8_t* out) {
  if (len > INT_MAX) return false;
  unsigned char nonce[12];
  makeNonce(counter, nonce);
  if (EVP_EncryptInit_ex2(seal_, nullptr, key, nonce, nullptr) != 1) return false;
  int produced = 0;
  if (len > 0 && EVP_EncryptUpdate(seal_, out, &produced, in, static_cast<int>(len)) != 1) return false;
  int tail = 0;
  if (EVP_EncryptFinal_ex(seal_, out + produced, &tail) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(seal_, EVP_CTRL_AEAD_GET_TAG, kAeadTagSize, out + len) == 1;
}

bool Aead::open(const uint8_t* key, uint64_t counter, const uint8_t* in, size_t len, uint8_t* out) {
  if (len < kAeadTagSize || len - kAeadTagSize > INT_MAX) return false;
  size_t textLen = len - kAeadTagSize;
  // Copy the tag first: with out == in the decryption must not be able to disturb it.
  unsigned char tag[kAeadTagSize];
  std::memcpy(tag, in + textLen, kAeadTagSize);
  unsigned char nonce[12];
  makeNonce(counter, nonce);
  if (EVP_DecryptInit_ex2(open_, nullptr, key, nonce, nullptr) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(open_, EVP_CTRL_AEAD_SET_TAG, kAeadTagSize, tag) != 1) return false;
  int produced = 0;
  if (textLen > 0 && EVP_DecryptUpdate(open_, out, &produced, in, static_cast<int>(textLen)) != 1) return false;
  int tail = 0;
  return EVP_DecryptFinal_ex(open_, out + produced, &tail) == 1;
}

}  // namespace weft
