#include "test_hooks.h"

#include <cstring>
#include <memory>

#include "../js_args.h"
#include "cookie.h"
#include "noise.h"
#include "ratelimiter.h"
#include "workers.h"

namespace weft {
namespace {

Napi::Buffer<uint8_t> copy(Napi::Env env, const uint8_t* p, size_t n) { return Napi::Buffer<uint8_t>::Copy(env, p, n); }

Napi::Uint8Array sized(const Napi::CallbackInfo& info, size_t i, const char* what, size_t n) {
  Napi::Uint8Array b = bytesArg(info, i, what);
  if (b.ByteLength() != n) throwRangeError(info.Env(), std::string(what) + " must be " + std::to_string(n) + " bytes");
  return b;
}

/** A message carrying mac1 and mac2 in its last 32 bytes (any length, for the reference's vectors). */
Napi::Uint8Array messageArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Uint8Array b = bytesArg(info, i, "message");
  if (b.ByteLength() < 8 + 2 * crypto::kMacSize) throwRangeError(info.Env(), "message must be at least 40 bytes");
  return b;
}

Endpoint endpointArg(const Napi::CallbackInfo& info, size_t i) {
  std::string address = stringArg(info, i, "address");
  uint16_t port = portArg(info, i + 1);
  Endpoint ep;
  if (!parseEndpoint(address, port, &ep)) throwWithCode(info.Env(), "EINVAL", "invalid address: " + address);
  return ep;
}

int64_t msArg(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int64_t>(integerArg(info, i, "nowMs", 0, 1e12)) * 1'000'000;
}

noise::PeerKeys peerKeys(const Napi::CallbackInfo& info, const crypto::X25519Key& local, size_t pubAt, size_t pskAt) {
  noise::PeerKeys keys;
  std::memcpy(keys.remoteStatic, keyArg(info, pubAt, "remotePublicKey").Data(), crypto::kKeySize);
  std::memcpy(keys.presharedKey, keyArg(info, pskAt, "presharedKey").Data(), crypto::kKeySize);
  keys.staticStaticValid = local.derive(keys.staticStatic, keys.remoteStatic);
  return keys;
}

crypto::X25519Key* loadKey(const Napi::CallbackInfo& info, size_t i, crypto::X25519Key* key) {
  if (!key->load(keyArg(info, i, "privateKey").Data())) throwWithCode(info.Env(), "EINVAL", "private key refused");
  return key;
}

void setKeys(Napi::Object o, const noise::SessionKeys& k) {
  Napi::Env env = o.Env();
  o.Set("sendKey", copy(env, k.sendKey, sizeof k.sendKey));
  o.Set("receiveKey", copy(env, k.receiveKey, sizeof k.receiveKey));
  o.Set("localIndex", Napi::Number::New(env, k.localIndex));
  o.Set("remoteIndex", Napi::Number::New(env, k.remoteIndex));
}

/** An initiator's handshake: new Initiator(localPriv, remotePub, psk); initiate(index, ts); finish(response). */
class InitiatorWrap : public Napi::ObjectWrap<InitiatorWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Initiator",
                       {InstanceMethod<&InitiatorWrap::initiate>("initiate"), InstanceMethod<&InitiatorWrap::finish>("finish")});
  }
  explicit InitiatorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<InitiatorWrap>(info) {
    loadKey(info, 0, &local_);
    keys_ = peerKeys(info, local_, 1, 2);
  }

 private:
  Napi::Value initiate(const Napi::CallbackInfo& info) {
    uint32_t index = uint32Arg(info, 0, "localIndex");
    Napi::Uint8Array ts = sized(info, 1, "timestamp", crypto::kTai64nSize);
    uint8_t msg[noise::kInitiationSize];
    if (!noise::createInitiation(local_, keys_, index, ts.Data(), msg, &state_)) return info.Env().Null();
    return copy(info.Env(), msg, sizeof msg);
  }
  Napi::Value finish(const Napi::CallbackInfo& info) {
    Napi::Uint8Array msg = sized(info, 0, "response", noise::kResponseSize);
    noise::SessionKeys k;
    if (!noise::consumeResponse(local_, keys_, &state_, msg.Data(), &k)) return info.Env().Null();
    Napi::Object o = Napi::Object::New(info.Env());
    setKeys(o, k);
    return o;
  }
  crypto::X25519Key local_;
  noise::PeerKeys keys_;
  noise::InitiatorState state_;
};

/** respond(localPriv, remotePub, psk, initiation, localIndex) -> {timestamp, response, keys...} | null */
Napi::Value respond(const Napi::CallbackInfo& info) {
  crypto::X25519Key local;
  loadKey(info, 0, &local);
  noise::PeerKeys keys = peerKeys(info, local, 1, 2);
  Napi::Uint8Array init = sized(info, 3, "initiation", noise::kInitiationSize);
  uint32_t index = uint32Arg(info, 4, "localIndex");
  noise::ConsumedInitiation in;
  uint8_t resp[noise::kResponseSize];
  noise::SessionKeys k;
  if (!noise::openStatic(local, init.Data(), &in) || !noise::openTimestamp(keys, init.Data(), &in) ||
      !noise::createResponse(in, keys, index, resp, &k))
    return info.Env().Null();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("remoteStatic", copy(info.Env(), in.remoteStatic, crypto::kKeySize));
  o.Set("timestamp", copy(info.Env(), in.timestamp, crypto::kTai64nSize));
  o.Set("response", copy(info.Env(), resp, sizeof resp));
  setKeys(o, k);
  return o;
}

/** The responder's cookie checker: new CookieChecker(publicKey | null). */
class CheckerWrap : public Napi::ObjectWrap<CheckerWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CookieChecker",
                       {InstanceMethod<&CheckerWrap::checkMac1>("checkMac1"), InstanceMethod<&CheckerWrap::checkMac2>("checkMac2"),
                        InstanceMethod<&CheckerWrap::createReply>("createReply")});
  }
  explicit CheckerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CheckerWrap>(info) {
    checker_.setKey(info.Length() > 0 && !info[0].IsNull() ? keyArg(info, 0, "publicKey").Data() : nullptr);
  }

 private:
  Napi::Value checkMac1(const Napi::CallbackInfo& info) {
    Napi::Uint8Array m = messageArg(info, 0);
    return Napi::Boolean::New(info.Env(), checker_.checkMac1(m.Data(), m.ByteLength()));
  }
  Napi::Value checkMac2(const Napi::CallbackInfo& info) {
    Napi::Uint8Array m = messageArg(info, 0);
    return Napi::Boolean::New(info.Env(), checker_.checkMac2(m.Data(), m.ByteLength(), endpointArg(info, 1), msArg(info, 3)));
  }
  Napi::Value createReply(const Napi::CallbackInfo& info) {
    Napi::Uint8Array m = messageArg(info, 0);
    uint8_t out[kCookieReplySize];
    if (!checker_.createReply(m.Data(), m.ByteLength(), endpointArg(info, 1), msArg(info, 3), out)) return info.Env().Null();
    return copy(info.Env(), out, sizeof out);
  }
  CookieChecker checker_;
};

/** The initiator's cookie state for one peer: new CookieGenerator(remotePublicKey). */
class GeneratorWrap : public Napi::ObjectWrap<GeneratorWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "CookieGenerator",
                       {InstanceMethod<&GeneratorWrap::addMacs>("addMacs"), InstanceMethod<&GeneratorWrap::consumeReply>("consumeReply")});
  }
  explicit GeneratorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GeneratorWrap>(info) {
    generator_.setKey(keyArg(info, 0, "remotePublicKey").Data());
  }

 private:
  /** A copy of the message with mac1 and mac2 written. */
  Napi::Value addMacs(const Napi::CallbackInfo& info) {
    Napi::Uint8Array m = messageArg(info, 0);
    Napi::Buffer<uint8_t> out = copy(info.Env(), m.Data(), m.ByteLength());
    generator_.addMacs(out.Data(), out.Length(), msArg(info, 1));
    return out;
  }
  Napi::Value consumeReply(const Napi::CallbackInfo& info) {
    Napi::Uint8Array r = sized(info, 0, "reply", kCookieReplySize);
    return Napi::Boolean::New(info.Env(), generator_.consumeReply(r.Data(), msArg(info, 1)));
  }
  CookieGenerator generator_;
};

/** new RateLimiter(maxEntries); allow(address, nowMs); size(). */
class LimiterWrap : public Napi::ObjectWrap<LimiterWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "RateLimiter",
                       {InstanceMethod<&LimiterWrap::allow>("allow"), InstanceMethod<&LimiterWrap::size>("size")});
  }
  explicit LimiterWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<LimiterWrap>(info),
        limiter_(static_cast<size_t>(info.Length() > 0 && !info[0].IsUndefined() ? integerArg(info, 0, "maxEntries", 1, 1 << 24) : 1 << 16)) {}

 private:
  Napi::Value allow(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), limiter_.allow(endpointArg(info, 0), msArg(info, 2)));
  }
  Napi::Value size(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(limiter_.size()));
  }
  RateLimiter limiter_;
};

/** The process's handshake workers as the devices see them. */
Napi::Value workers(const Napi::CallbackInfo& info) {
  HandshakeWorkers& w = HandshakeWorkers::instance();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("threads", Napi::Number::New(info.Env(), static_cast<double>(w.threads())));
  o.Set("queued", Napi::Number::New(info.Env(), static_cast<double>(w.queued())));
  o.Set("capacity", Napi::Number::New(info.Env(), static_cast<double>(kHandshakeQueueCapacity)));
  return o;
}

}  // namespace

Napi::Object handshakeTestHooks(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  // The classes live as long as the module: their constructors are referenced by `o`.
  o.Set("Initiator", InitiatorWrap::define(env));
  o.Set("respond", Napi::Function::New<respond>(env, "respond"));
  o.Set("CookieChecker", CheckerWrap::define(env));
  o.Set("CookieGenerator", GeneratorWrap::define(env));
  o.Set("RateLimiter", LimiterWrap::define(env));
  o.Set("workers", Napi::Function::New<workers>(env, "workers"));
  return o;
}

}  // namespace weft
