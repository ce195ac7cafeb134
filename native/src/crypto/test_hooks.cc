#include "test_hooks.h"

#include <cstring>
#include <string>
#include <vector>

#include "../js_args.h"
#include "primitives.h"

namespace weft {
namespace crypto {
namespace {

// The largest input the hooks take: far beyond any handshake message, small enough that a test
// passing a huge buffer by mistake gets an error rather than a long wait.
constexpr size_t kMaxInput = 1 << 20;

Napi::Uint8Array bytes(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Uint8Array b = bytesArg(info, i, what);
  if (b.ByteLength() > kMaxInput) throwRangeError(info.Env(), std::string(what) + " is longer than 1 MiB");
  return b;
}

Napi::Uint8Array sized(const Napi::CallbackInfo& info, size_t i, const char* what, size_t len) {
  Napi::Uint8Array b = bytesArg(info, i, what);
  if (b.ByteLength() != len)
    throwRangeError(info.Env(), std::string(what) + " must be " + std::to_string(len) + " bytes");
  return b;
}

Napi::Buffer<uint8_t> newBuffer(Napi::Env env, size_t len) { return Napi::Buffer<uint8_t>::New(env, len); }

Napi::Value hashHook(const Napi::CallbackInfo& info) {
  Napi::Uint8Array a = bytes(info, 0, "a");
  bool hasB = info.Length() > 1 && !info[1].IsUndefined();
  Napi::Uint8Array b = hasB ? bytes(info, 1, "b") : Napi::Uint8Array();
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), kHashSize);
  hash(out.Data(), a.Data(), a.ByteLength(), hasB ? b.Data() : nullptr, hasB ? b.ByteLength() : 0);
  return out;
}

// The Blake2s class itself, fed part by part: digest lengths and keys beyond what HASH and MAC
// use, and update() boundaries chosen by the test.
Napi::Value blake2sHook(const Napi::CallbackInfo& info) {
  size_t outLen = static_cast<size_t>(integerArg(info, 0, "outLen", 1, kHashSize));
  Napi::Uint8Array key = bytes(info, 1, "key");
  if (key.ByteLength() > kKeySize) throwRangeError(info.Env(), "key must be at most 32 bytes");
  std::vector<Napi::Uint8Array> parts;
  for (size_t i = 2; i < info.Length(); ++i) parts.push_back(bytes(info, i, "part"));
  Blake2s h(outLen, key.ByteLength() > 0 ? key.Data() : nullptr, key.ByteLength());
  for (const Napi::Uint8Array& p : parts) h.update(p.Data(), p.ByteLength());
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), outLen);
  h.final(out.Data());
  return out;
}

Napi::Value macHook(const Napi::CallbackInfo& info) {
  Napi::Uint8Array key = bytes(info, 0, "key");
  if (key.ByteLength() > kKeySize) throwRangeError(info.Env(), "key must be at most 32 bytes");
  Napi::Uint8Array data = bytes(info, 1, "data");
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), kMacSize);
  mac(out.Data(), key.Data(), key.ByteLength(), data.Data(), data.ByteLength());
  return out;
}

Napi::Value hmacHook(const Napi::CallbackInfo& info) {
  Napi::Uint8Array key = bytes(info, 0, "key");
  Napi::Uint8Array data = bytes(info, 1, "data");
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), kHashSize);
  hmac(out.Data(), key.Data(), key.ByteLength(), data.Data(), data.ByteLength());
  return out;
}

Napi::Value kdfHook(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int n = static_cast<int>(integerArg(info, 0, "n", 1, 3));
  Napi::Uint8Array key = sized(info, 1, "key", kHashSize);
  Napi::Uint8Array input = bytes(info, 2, "input");
  uint8_t t[3][kHashSize];
  kdf(t[0], n >= 2 ? t[1] : nullptr, n >= 3 ? t[2] : nullptr, key.Data(), input.Data(), input.ByteLength());
  Napi::Array out = Napi::Array::New(env, n);
  for (int i = 0; i < n; ++i) out.Set(i, Napi::Buffer<uint8_t>::Copy(env, t[i], kHashSize));
  wipe(t, sizeof(t));
  return out;
}

X25519Key& loadKey(const Napi::CallbackInfo& info, X25519Key& key) {
  Napi::Uint8Array priv = sized(info, 0, "privateKey", kKeySize);
  if (!key.load(priv.Data())) throw Napi::Error::New(info.Env(), "OpenSSL refused the X25519 private key");
  return key;
}

Napi::Value x25519PublicHook(const Napi::CallbackInfo& info) {
  X25519Key key;
  loadKey(info, key);
  return Napi::Buffer<uint8_t>::Copy(info.Env(), key.publicKey(), kKeySize);
}

Napi::Value x25519Hook(const Napi::CallbackInfo& info) {
  X25519Key key;
  loadKey(info, key);
  Napi::Uint8Array pub = sized(info, 1, "publicKey", kKeySize);
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), kKeySize);
  if (!key.derive(out.Data(), pub.Data())) return info.Env().Null();
  return out;
}

// X25519Key::generate never shows its private key, so the test checks it through what it can
// see: a public key, and a shared secret the peer must be able to compute too.
Napi::Value x25519GenerateHook(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array peer = sized(info, 0, "peerPublicKey", kKeySize);
  X25519Key key;
  if (!key.generate()) throw Napi::Error::New(env, "X25519 key generation failed");
  uint8_t shared[kKeySize];
  bool ok = key.derive(shared, peer.Data());
  Napi::Object out = Napi::Object::New(env);
  out.Set("publicKey", Napi::Buffer<uint8_t>::Copy(env, key.publicKey(), kKeySize));
  out.Set("shared", ok ? Napi::Value(Napi::Buffer<uint8_t>::Copy(env, shared, kKeySize)) : env.Null());
  wipe(shared, sizeof(shared));
  return out;
}

Napi::Value aeadSealHook(const Napi::CallbackInfo& info) {
  Napi::Uint8Array key = sized(info, 0, "key", kKeySize);
  uint64_t counter = uint64Arg(info, 1, "counter");
  Napi::Uint8Array text = bytes(info, 2, "plaintext");
  Napi::Uint8Array ad = bytes(info, 3, "ad");
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), text.ByteLength() + kTagSize);
  if (!aeadSeal(out.Data(), key.Data(), counter, text.Data(), text.ByteLength(), ad.Data(), ad.ByteLength()))
    throw Napi::Error::New(info.Env(), "ChaCha20-Poly1305 encryption failed");
  return out;
}

Napi::Value aeadOpenHook(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array key = sized(info, 0, "key", kKeySize);
  uint64_t counter = uint64Arg(info, 1, "counter");
  Napi::Uint8Array sealed = bytes(info, 2, "ciphertext");
  Napi::Uint8Array ad = bytes(info, 3, "ad");
  // Too short to hold a tag is a forgery like any other, as for the packet path's aeadOpen.
  if (sealed.ByteLength() < kTagSize) return env.Null();
  Napi::Buffer<uint8_t> out = newBuffer(env, sealed.ByteLength() - kTagSize);
  if (!aeadOpen(out.Data(), key.Data(), counter, sealed.Data(), sealed.ByteLength(), ad.Data(), ad.ByteLength()))
    return env.Null();
  return out;
}

Napi::Value hchacha20Hook(const Napi::CallbackInfo& info) {
  Napi::Uint8Array key = sized(info, 0, "key", kKeySize);
  Napi::Uint8Array nonce = sized(info, 1, "nonce", 16);
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), kKeySize);
  hchacha20(out.Data(), key.Data(), nonce.Data());
  return out;
}

Napi::Value xaeadSealHook(const Napi::CallbackInfo& info) {
  Napi::Uint8Array key = sized(info, 0, "key", kKeySize);
  Napi::Uint8Array nonce = sized(info, 1, "nonce", kXNonceSize);
  Napi::Uint8Array text = bytes(info, 2, "plaintext");
  Napi::Uint8Array ad = bytes(info, 3, "ad");
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), text.ByteLength() + kTagSize);
  if (!xaeadSeal(out.Data(), key.Data(), nonce.Data(), text.Data(), text.ByteLength(), ad.Data(), ad.ByteLength()))
    throw Napi::Error::New(info.Env(), "XChaCha20-Poly1305 encryption failed");
  return out;
}

Napi::Value xaeadOpenHook(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Uint8Array key = sized(info, 0, "key", kKeySize);
  Napi::Uint8Array nonce = sized(info, 1, "nonce", kXNonceSize);
  Napi::Uint8Array sealed = bytes(info, 2, "ciphertext");
  Napi::Uint8Array ad = bytes(info, 3, "ad");
  if (sealed.ByteLength() < kTagSize) return env.Null();
  Napi::Buffer<uint8_t> out = newBuffer(env, sealed.ByteLength() - kTagSize);
  if (!xaeadOpen(out.Data(), key.Data(), nonce.Data(), sealed.Data(), sealed.ByteLength(), ad.Data(),
                 ad.ByteLength()))
    return env.Null();
  return out;
}

Napi::Value equalHook(const Napi::CallbackInfo& info) {
  Napi::Uint8Array a = bytes(info, 0, "a");
  Napi::Uint8Array b = bytes(info, 1, "b");
  if (a.ByteLength() != b.ByteLength()) throwRangeError(info.Env(), "a and b must have the same length");
  return Napi::Boolean::New(info.Env(), equal(a.Data(), b.Data(), a.ByteLength()));
}

Napi::Value randomBytesHook(const Napi::CallbackInfo& info) {
  size_t n = static_cast<size_t>(integerArg(info, 0, "n", 0, 65536));
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), n);
  randomBytes(out.Data(), n);
  return out;
}

Napi::Value tai64nNowHook(const Napi::CallbackInfo& info) {
  Napi::Buffer<uint8_t> out = newBuffer(info.Env(), kTai64nSize);
  tai64nNow(out.Data());
  return out;
}

// The handshake updates its state in place (C = KDF1(C, x), H = HASH(H || x), messages sealed
// and opened in their own buffers), which JS cannot express with fresh output Buffers: each
// in-place call here is compared with the same call into separate buffers.
Napi::Value aliasingHook(const Napi::CallbackInfo& info) {
  Napi::Uint8Array keyArg = sized(info, 0, "key", kKeySize);
  Napi::Uint8Array dataArg = bytes(info, 1, "data");
  std::vector<uint8_t> key(keyArg.Data(), keyArg.Data() + kKeySize);
  std::vector<uint8_t> data(dataArg.Data(), dataArg.Data() + dataArg.ByteLength());
  const size_t n = data.size();
  Napi::Array failures = Napi::Array::New(info.Env());
  uint32_t failed = 0;
  auto check = [&](const char* name, bool ok) {
    if (!ok) failures.Set(failed++, Napi::String::New(info.Env(), name));
  };
  uint8_t r1[kHashSize], r2[kHashSize], r3[kHashSize];

  std::vector<uint8_t> buf = key;
  hash(r1, key.data(), kKeySize, data.data(), n);
  hash(buf.data(), buf.data(), kKeySize, data.data(), n);
  check("hash out=a", equal(buf.data(), r1, kHashSize));

  buf = key;
  hmac(r1, key.data(), kKeySize, data.data(), n);
  hmac(buf.data(), buf.data(), kKeySize, data.data(), n);
  check("hmac out=key", equal(buf.data(), r1, kHashSize));

  // Output over the data needs room for it: pad a copy to at least a hash.
  std::vector<uint8_t> padded = data;
  if (padded.size() < kHashSize) padded.resize(kHashSize);
  hmac(r1, key.data(), kKeySize, padded.data(), padded.size());
  hmac(padded.data(), key.data(), kKeySize, padded.data(), padded.size());
  check("hmac out=data", equal(padded.data(), r1, kHashSize));

  padded = data;
  if (padded.size() < kMacSize) padded.resize(kMacSize);
  mac(r1, key.data(), kKeySize, padded.data(), padded.size());
  mac(padded.data(), key.data(), kKeySize, padded.data(), padded.size());
  check("mac out=data", equal(padded.data(), r1, kMacSize));

  kdf(r1, r2, r3, key.data(), data.data(), n);
  buf = key;
  uint8_t a2[kHashSize];
  kdf(buf.data(), a2, nullptr, buf.data(), data.data(), n);
  check("kdf t1=key", equal(buf.data(), r1, kHashSize) && equal(a2, r2, kHashSize));
  uint8_t a1[kHashSize], a3[kHashSize];
  kdf(a1, nullptr, a3, key.data(), data.data(), n);
  check("kdf t3 without t2", equal(a1, r1, kHashSize) && equal(a3, r3, kHashSize));
  // An input of one hash (a DH result or the PSK) overwritten by an output.
  std::vector<uint8_t> in(data.begin(), data.begin() + (n < kHashSize ? n : kHashSize));
  in.resize(kHashSize);
  kdf(r1, r2, r3, key.data(), in.data(), kHashSize);
  kdf(a1, in.data(), a3, key.data(), in.data(), kHashSize);
  check("kdf t2=input", equal(a1, r1, kHashSize) && equal(in.data(), r2, kHashSize) && equal(a3, r3, kHashSize));

  std::vector<uint8_t> sealed(n + kTagSize);
  bool ok = aeadSeal(sealed.data(), key.data(), 5, data.data(), n, r1, kHashSize);
  buf = data;
  buf.resize(n + kTagSize);
  ok = ok && aeadSeal(buf.data(), key.data(), 5, buf.data(), n, r1, kHashSize);
  check("aeadSeal out=in", ok && equal(buf.data(), sealed.data(), n + kTagSize));
  ok = aeadOpen(buf.data(), key.data(), 5, buf.data(), n + kTagSize, r1, kHashSize);
  check("aeadOpen out=in", ok && (n == 0 || equal(buf.data(), data.data(), n)));

  uint8_t nonce[kXNonceSize];
  std::memcpy(nonce, r2, kXNonceSize);
  ok = xaeadSeal(sealed.data(), key.data(), nonce, data.data(), n, r1, kHashSize);
  buf = data;
  buf.resize(n + kTagSize);
  ok = ok && xaeadSeal(buf.data(), key.data(), nonce, buf.data(), n, r1, kHashSize);
  check("xaeadSeal out=in", ok && equal(buf.data(), sealed.data(), n + kTagSize));
  ok = xaeadOpen(buf.data(), key.data(), nonce, buf.data(), n + kTagSize, r1, kHashSize);
  check("xaeadOpen out=in", ok && (n == 0 || equal(buf.data(), data.data(), n)));
  return failures;
}

}  // namespace

Napi::Object cryptoTestHooks(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("hash", Napi::Function::New<hashHook>(env, "hash"));
  o.Set("blake2s", Napi::Function::New<blake2sHook>(env, "blake2s"));
  o.Set("mac", Napi::Function::New<macHook>(env, "mac"));
  o.Set("hmac", Napi::Function::New<hmacHook>(env, "hmac"));
  o.Set("kdf", Napi::Function::New<kdfHook>(env, "kdf"));
  o.Set("x25519Public", Napi::Function::New<x25519PublicHook>(env, "x25519Public"));
  o.Set("x25519", Napi::Function::New<x25519Hook>(env, "x25519"));
  o.Set("x25519Generate", Napi::Function::New<x25519GenerateHook>(env, "x25519Generate"));
  o.Set("aeadSeal", Napi::Function::New<aeadSealHook>(env, "aeadSeal"));
  o.Set("aeadOpen", Napi::Function::New<aeadOpenHook>(env, "aeadOpen"));
  o.Set("hchacha20", Napi::Function::New<hchacha20Hook>(env, "hchacha20"));
  o.Set("xaeadSeal", Napi::Function::New<xaeadSealHook>(env, "xaeadSeal"));
  o.Set("xaeadOpen", Napi::Function::New<xaeadOpenHook>(env, "xaeadOpen"));
  o.Set("equal", Napi::Function::New<equalHook>(env, "equal"));
  o.Set("randomBytes", Napi::Function::New<randomBytesHook>(env, "randomBytes"));
  o.Set("tai64nNow", Napi::Function::New<tai64nNowHook>(env, "tai64nNow"));
  o.Set("aliasing", Napi::Function::New<aliasingHook>(env, "aliasing"));
  return o;
}

}  // namespace crypto
}  // namespace weft
