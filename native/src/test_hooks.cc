#include "test_hooks.h"

#include <optional>
#include <vector>

#include "aead.h"
#include "constants.h"
#include "js_args.h"

namespace weft {
namespace {

const uint8_t* keyArg(const Napi::CallbackInfo& info) {
  Napi::Uint8Array key = bytesArg(info, 0, "key");
  if (key.ByteLength() != kAeadKeySize) throwRangeError(info.Env(), "key must be 32 bytes");
  return key.Data();
}

}  // namespace

Napi::Function ReplayWindowWrap::define(Napi::Env env) {
  return DefineClass(env, "ReplayWindow",
                     {
                         InstanceMethod<&ReplayWindowWrap::validate>("validate"),
                         InstanceMethod<&ReplayWindowWrap::reset>("reset"),
                     });
}

Napi::Value ReplayWindowWrap::validate(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), window_.validate(uint64Arg(info, 0, "counter")));
}

Napi::Value ReplayWindowWrap::reset(const Napi::CallbackInfo& info) {
  window_.reset();
  return info.Env().Undefined();
}

Napi::Function AllowedIpsTableWrap::define(Napi::Env env) {
  return DefineClass(env, "AllowedIpsTable",
                     {
                         InstanceMethod<&AllowedIpsTableWrap::insert>("insert"),
                         InstanceMethod<&AllowedIpsTableWrap::remove>("remove"),
                         InstanceMethod<&AllowedIpsTableWrap::clear>("clear"),
                         InstanceMethod<&AllowedIpsTableWrap::lookup>("lookup"),
                         InstanceMethod<&AllowedIpsTableWrap::size>("size"),
                     });
}

namespace {

PeerId tablePeerArg(const Napi::CallbackInfo& info) {
  return static_cast<PeerId>(integerArg(info, 0, "peer", 1, 4294967295.0));
}

}  // namespace

Napi::Value AllowedIpsTableWrap::insert(const Napi::CallbackInfo& info) {
  PeerId peer = tablePeerArg(info);
  for (const Prefix& p : prefixRecordsArg(info, 1)) table_.insert(p, peer);
  return info.Env().Undefined();
}

Napi::Value AllowedIpsTableWrap::remove(const Napi::CallbackInfo& info) {
  PeerId peer = tablePeerArg(info);
  for (const Prefix& p : prefixRecordsArg(info, 1)) table_.remove(p, peer);
  return info.Env().Undefined();
}

Napi::Value AllowedIpsTableWrap::clear(const Napi::CallbackInfo& info) {
  table_.removePeer(tablePeerArg(info));
  return info.Env().Undefined();
}

Napi::Value AllowedIpsTableWrap::lookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double family = integerArg(info, 0, "family", 4, 6);
  Napi::Uint8Array addr = bytesArg(info, 1, "address");
  std::optional<PeerId> peer;
  if (family == 4 && addr.ByteLength() == 4)
    peer = table_.lookup4(addr.Data());
  else if (family == 6 && addr.ByteLength() == 16)
    peer = table_.lookup6(addr.Data());
  else
    throwRangeError(env, "address must be 4 bytes (family 4) or 16 bytes (family 6)");
  return Napi::Number::New(env, peer ? *peer : 0);
}

Napi::Value AllowedIpsTableWrap::size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(table_.size()));
}

Napi::Value aeadSeal(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* key = keyArg(info);
  uint64_t counter = uint64Arg(info, 1, "counter");
  Napi::Uint8Array text = bytesArg(info, 2, "plaintext");
  std::vector<uint8_t> out(text.ByteLength() + kAeadTagSize);
  if (!Aead::local().seal(key, counter, text.Data(), text.ByteLength(), out.data()))
    throw Napi::Error::New(env, "ChaCha20-Poly1305 encryption failed");
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size());
}

Napi::Value aeadOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint8_t* key = keyArg(info);
  uint64_t counter = uint64Arg(info, 1, "counter");
  Napi::Uint8Array sealed = bytesArg(info, 2, "ciphertext");
  if (sealed.ByteLength() < kAeadTagSize) return env.Null();
  std::vector<uint8_t> out(sealed.ByteLength() - kAeadTagSize + 1);
  if (!Aead::local().open(key, counter, sealed.Data(), sealed.ByteLength(), out.data())) return env.Null();
  return Napi::Buffer<uint8_t>::Copy(env, out.data(), sealed.ByteLength() - kAeadTagSize);
}

}  // namespace weft
