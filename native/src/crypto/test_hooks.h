// The `cryptoTest` export: the handshake primitives (primitives.h) over Buffers, for the
// known-answer tests in test/unit/native-handshake-crypto.test.ts. Every argument is checked
// (TypeError for a wrong type, RangeError for a wrong length or value) before any C++ code runs.
#pragma once

#include <napi.h>

namespace weft {
namespace crypto {

/**
 * hash(a, b?), blake2s(outLen, key, ...parts), mac(key, data), hmac(key, data),
 * kdf(n, key, input) -> Buffer[n], x25519Public(priv), x25519(priv, pub) -> Buffer | null,
 * x25519Generate(peerPub) -> {publicKey, shared: Buffer | null}, aeadSeal(key, counter, plain, ad),
 * aeadOpen(key, counter, sealed, ad) -> Buffer | null, hchacha20(key, nonce16),
 * xaeadSeal(key, nonce24, plain, ad), xaeadOpen(key, nonce24, sealed, ad) -> Buffer | null,
 * equal(a, b), randomBytes(n), tai64nNow(), aliasing(key, data) -> names of in-place failures.
 */
Napi::Object cryptoTestHooks(Napi::Env env);

}  // namespace crypto
}  // namespace weft
