#include "test_hooks.h"

#include <optional>
#include <vector>

#include "aead.h"
#include "constants.h"
#include "js_args.h"
#include "crypto_pool.h"
#include "offload.h"

namespace weft {
namespace {

const uint8_t* keyArg(const Napi::CallbackInfo& info) {
  Napi::Uint8Array key = bytesArg(info, 0, "key");
  if (key.ByteLength() != kAeadKeySize) throwRangeError(info.Env(), "key must be 32 bytes");
  return key.Data();
}

uint16_t headerField(const Napi::Object& h, const char* name, uint32_t max) {
  Napi::Value v = h.Get(name);
  if (!v.IsNumber()) throwTypeError(h.Env(), std::string("header.") + name + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= max) || static_cast<double>(static_cast<uint32_t>(d)) != d)
    throwRangeError(h.Env(), std::string("header.") + name + " out of range");
  return static_cast<uint16_t>(d);
}

Napi::Object headerObject(Napi::Env env, const VnetHeader& h) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("flags", Napi::Number::New(env, h.flags));
  o.Set("gsoType", Napi::Number::New(env, h.gsoType));
  o.Set("hdrLen", Napi::Number::New(env, h.hdrLen));
  o.Set("gsoSize", Napi::Number::New(env, h.gsoSize));
  o.Set("csumStart", Napi::Number::New(env, h.csumStart));
  o.Set("csumOffset", Napi::Number::New(env, h.csumOffset));
  return o;
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

Napi::Value gsoSplit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throwTypeError(env, "header must be an object");
  Napi::Object ho = info[0].As<Napi::Object>();
  VnetHeader h;
  h.flags = static_cast<uint8_t>(headerField(ho, "flags", 255));
  h.gsoType = static_cast<uint8_t>(headerField(ho, "gsoType", 255));
  h.hdrLen = headerField(ho, "hdrLen", 65535);
  h.gsoSize = headerField(ho, "gsoSize", 65535);
  h.csumStart = headerField(ho, "csumStart", 65535);
  h.csumOffset = headerField(ho, "csumOffset", 65535);
  Napi::Uint8Array pkt = bytesArg(info, 1, "packet");
  GsoSplitter split;
  if (!split.init(h, pkt.Data(), pkt.ByteLength())) return env.Null();
  Napi::Array out = Napi::Array::New(env, split.count());
  std::vector<uint8_t> seg(split.maxSegmentLength());
  for (size_t i = 0; i < split.count(); ++i) {
    size_t n = split.write(i, seg.data());
    out.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, seg.data(), n));
  }
  return out;
}

Napi::Value groCoalesce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throwTypeError(env, "packets must be an array of Buffers");
  Napi::Array in = info[0].As<Napi::Array>();
  // Each packet gets the header room in front that the device's receive buffers have.
  std::vector<std::vector<uint8_t>> copies(in.Length());
  for (uint32_t i = 0; i < in.Length(); ++i) {
    Napi::Value v = in.Get(i);
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throwTypeError(env, "packets must be an array of Buffers");
    Napi::Uint8Array p = v.As<Napi::Uint8Array>();
    if (p.ByteLength() == 0 || p.ByteLength() > kMaxIpPacket) throwRangeError(env, "packet length out of range");
    copies[i].resize(kVnetHdrSize + p.ByteLength());
    std::memcpy(copies[i].data() + kVnetHdrSize, p.Data(), p.ByteLength());
  }
  // refuseMerged: behave like a TUN that rejects super-packets (the coalescer's fallback).
  bool refuseMerged = false;
  if (info.Length() > 1 && info[1].IsObject()) {
    Napi::Value v = info[1].As<Napi::Object>().Get("refuseMerged");
    refuseMerged = v.IsBoolean() && v.As<Napi::Boolean>().Value();
  }
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  TcpCoalescer coalescer(
      [&](uint8_t* buf, size_t len) {
        if (refuseMerged && readVnetHeader(buf).gsoType != kVnetGsoNone) return false;
        Napi::Object w = Napi::Object::New(env);
        w.Set("header", headerObject(env, readVnetHeader(buf)));
        w.Set("packet", Napi::Buffer<uint8_t>::Copy(env, buf + kVnetHdrSize, len - kVnetHdrSize));
        out.Set(n++, w);
        return true;
      },
      true);
  for (auto& c : copies) coalescer.add(c.data() + kVnetHdrSize, c.size() - kVnetHdrSize);
  coalescer.flush();
  return out;
}

Napi::Value cryptoPoolCheck(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  unsigned workers = static_cast<unsigned>(integerArg(info, 0, "workers", 0, 16));
  Napi::Array sizes = info.Length() > 1 && info[1].IsArray() ? info[1].As<Napi::Array>() : Napi::Array::New(env);
  // Every run must call fn exactly once per index, on whichever thread, and be complete (all
  // writes visible) when run() returns; a mismatch is reported as the run's index.
  CryptoPool pool(workers);
  std::vector<std::atomic<uint32_t>> hits(1 << 16);
  for (uint32_t r = 0; r < sizes.Length(); ++r) {
    size_t n = static_cast<size_t>(sizes.Get(r).As<Napi::Number>().Uint32Value());
    if (n > hits.size()) throwRangeError(env, "size too large");
    for (size_t i = 0; i < n; ++i) hits[i].store(0, std::memory_order_relaxed);
    pool.run(n, [&](size_t i) { hits[i].fetch_add(1, std::memory_order_relaxed); });
    for (size_t i = 0; i < n; ++i)
      if (hits[i].load(std::memory_order_relaxed) != 1) return Napi::Number::New(env, r);
  }
  return Napi::Number::New(env, -1);
}

}  // namespace weft
