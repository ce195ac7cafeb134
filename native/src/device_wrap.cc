#include "device_wrap.h"

#include <cstring>

#include "clock.h"
#include "js_args.h"
#include "sys_error.h"

namespace weft {
namespace {

Napi::Object endpointObject(Napi::Env env, const Endpoint& ep) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("address", formatAddress(ep));
  o.Set("port", Napi::Number::New(env, ep.port));
  return o;
}

void copyKey(const Napi::Object& spec, const char* field, uint8_t* out) {
  Napi::Value v = spec.Get(field);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      v.As<Napi::Uint8Array>().ByteLength() != kAeadKeySize)
    throwTypeError(spec.Env(), std::string("keypair.") + field + " must be a 32-byte Buffer");
  std::memcpy(out, v.As<Napi::Uint8Array>().Data(), kAeadKeySize);
}

uint32_t indexField(const Napi::Object& spec, const char* field) {
  Napi::Value v = spec.Get(field);
  if (!v.IsNumber()) throwTypeError(spec.Env(), std::string("keypair.") + field + " must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0 && d <= 4294967295.0) || static_cast<double>(static_cast<uint32_t>(d)) != d)
    throwRangeError(spec.Env(), std::string("keypair.") + field + " must be a 32-bit unsigned integer");
  return static_cast<uint32_t>(d);
}

}  // namespace

Napi::Function DeviceWrap::define(Napi::Env env) {
  return DefineClass(env, "NativeDevice",
                     {
                         InstanceAccessor<&DeviceWrap::name>("name"),
                         InstanceMethod<&DeviceWrap::now>("now"),
                         InstanceMethod<&DeviceWrap::start>("start"),
                         InstanceMethod<&DeviceWrap::close>("close"),
                         InstanceMethod<&DeviceWrap::bind>("bind"),
                         InstanceMethod<&DeviceWrap::setFwmark>("setFwmark"),
                         InstanceMethod<&DeviceWrap::mtu>("mtu"),
                         InstanceMethod<&DeviceWrap::setPrivateKey>("setPrivateKey"),
                         InstanceMethod<&DeviceWrap::addPeer>("addPeer"),
                         InstanceMethod<&DeviceWrap::setPresharedKey>("setPresharedKey"),
                         InstanceMethod<&DeviceWrap::initiateHandshake>("initiateHandshake"),
                         InstanceMethod<&DeviceWrap::abandonHandshake>("abandonHandshake"),
                         InstanceMethod<&DeviceWrap::removePeer>("removePeer"),
                         InstanceMethod<&DeviceWrap::setEndpoint>("setEndpoint"),
                         InstanceMethod<&DeviceWrap::clearEndpoint>("clearEndpoint"),
                         InstanceMethod<&DeviceWrap::insertAllowedIps>("insertAllowedIps"),
                         InstanceMethod<&DeviceWrap::removeAllowedIps>("removeAllowedIps"),
                         InstanceMethod<&DeviceWrap::clearAllowedIps>("clearAllowedIps"),
                         InstanceMethod<&DeviceWrap::installKeypair>("installKeypair"),
                         InstanceMethod<&DeviceWrap::expireKeypairs>("expireKeypairs"),
                         InstanceMethod<&DeviceWrap::clearStaged>("clearStaged"),
                         InstanceMethod<&DeviceWrap::requestHandshakeAgain>("requestHandshakeAgain"),
                         InstanceMethod<&DeviceWrap::sendKeepalive>("sendKeepalive"),
                         InstanceMethod<&DeviceWrap::sendToPeer>("sendToPeer"),
                         InstanceMethod<&DeviceWrap::sendTo>("sendTo"),
                         InstanceMethod<&DeviceWrap::peerState>("peerState"),
                         InstanceMethod<&DeviceWrap::counters>("counters"),
                         // TEST ONLY (native.ts): key-lifetime hooks.
                         InstanceMethod<&DeviceWrap::testAgeKeypairs>("testAgeKeypairs"),
                         InstanceMethod<&DeviceWrap::testSetSendCounter>("testSetSendCounter"),
                     });
}

DeviceWrap::DeviceWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceWrap>(info), env_(info.Env()) {
  Napi::Env env = info.Env();
  std::string ifname = stringArg(info, 0, "name");
  int mtu = static_cast<int>(integerArg(info, 1, "mtu", 576, 65535));
  if (info.Length() < 3 || !info[2].IsFunction()) throwTypeError(env, "onEvents must be a function");
  bool offloads = true;
  int cryptoThreads = -1;
  if (info.Length() > 3 && !info[3].IsUndefined()) {
    if (!info[3].IsObject()) throwTypeError(env, "options must be an object");
    Napi::Object opts = info[3].As<Napi::Object>();
    Napi::Value v = opts.Get("offloads");
    if (!v.IsUndefined()) {
      if (!v.IsBoolean()) throwTypeError(env, "options.offloads must be a boolean");
      offloads = v.As<Napi::Boolean>().Value();
    }
    Napi::Value t = opts.Get("cryptoThreads");
    if (!t.IsUndefined()) {
      double d = t.IsNumber() ? t.As<Napi::Number>().DoubleValue() : -2;
      if (!(d >= -1 && d <= 16) || static_cast<double>(static_cast<int>(d)) != d)
        throwRangeError(env, "options.cryptoThreads must be an integer from -1 (automatic) to 16");
      cryptoThreads = static_cast<int>(d);
    }
  }
  queue_ = EventQueue::create(env, info[2].As<Napi::Function>());
  try {
    device_ = std::make_unique<Device>(ifname, mtu, queue_, offloads, cryptoThreads);
  } catch (...) {
    queue_->release();
    queue_ = nullptr;
    shut_ = true;
    rethrowAsJs(env);
  }
  if (napi_add_env_cleanup_hook(env, &DeviceWrap::cleanupHook, this) == napi_ok) hookAdded_ = true;
}

DeviceWrap::~DeviceWrap() { shutdown(false); }

void DeviceWrap::cleanupHook(void* self) { static_cast<DeviceWrap*>(self)->shutdown(true); }

void DeviceWrap::shutdown(bool fromHook) {
  if (shut_) return;
  shut_ = true;
  if (hookAdded_ && !fromHook) napi_remove_env_cleanup_hook(env_, &DeviceWrap::cleanupHook, this);
  hookAdded_ = false;
  if (device_) device_->close();  // joins the threads: nothing pushes events after this
  if (queue_) queue_->release();
  queue_ = nullptr;
}

Device& DeviceWrap::live(Napi::Env env) {
  if (shut_ || !device_ || device_->closed()) throwWithCode(env, "ERR_CLOSED", "device is closed");
  return *device_;
}

Napi::Value DeviceWrap::name(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_ ? device_->name() : "");
}

Napi::Value DeviceWrap::now(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), nsToMs(monotonicNs()));
}

Napi::Value DeviceWrap::start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  try {
    dev.start();
  } catch (...) {
    rethrowAsJs(env);
  }
  queue_->ref(env);
  Ref();
  held_ = true;
  return env.Undefined();
}

Napi::Value DeviceWrap::close(const Napi::CallbackInfo& info) {
  shutdown(false);
  if (held_) {
    held_ = false;
    Unref();
  }
  return info.Env().Undefined();
}

Napi::Value DeviceWrap::bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  uint16_t port = portArg(info, 0);
  try {
    return Napi::Number::New(env, dev.bind(port));
  } catch (...) {
    rethrowAsJs(env);
  }
}

Napi::Value DeviceWrap::setFwmark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  uint32_t mark = uint32Arg(info, 0, "mark");
  try {
    dev.setFwmark(mark);
  } catch (...) {
    rethrowAsJs(env);
  }
  return env.Undefined();
}

Napi::Value DeviceWrap::mtu(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), device_ ? device_->mtu() : 0);
}

#define WEFT_PEER_CALL(method, call)                              \
  Napi::Value DeviceWrap::method(const Napi::CallbackInfo& info) { \
    Napi::Env env = info.Env();                                    \
    Device& dev = live(env);                                       \
    PeerId peer = uint32Arg(info, 0, "peer");                      \
    try {                                                          \
      call;                                                        \
    } catch (...) {                                                \
      rethrowAsJs(env);                                            \
    }                                                              \
    return env.Undefined();                                        \
  }

WEFT_PEER_CALL(addPeer, dev.addPeer(peer, keyArg(info, 1, "publicKey").Data()))
WEFT_PEER_CALL(setPresharedKey, dev.setPresharedKey(peer, keyArg(info, 1, "presharedKey").Data()))
WEFT_PEER_CALL(abandonHandshake, dev.abandonHandshake(peer))
WEFT_PEER_CALL(removePeer, dev.removePeer(peer))
WEFT_PEER_CALL(clearEndpoint, dev.clearEndpoint(peer))
WEFT_PEER_CALL(clearAllowedIps, dev.clearAllowedIps(peer))
WEFT_PEER_CALL(expireKeypairs, dev.expireKeypairs(peer))
WEFT_PEER_CALL(clearStaged, dev.clearStaged(peer))
WEFT_PEER_CALL(requestHandshakeAgain, dev.requestHandshakeAgain(peer))
WEFT_PEER_CALL(insertAllowedIps, dev.insertAllowedIps(peer, prefixRecordsArg(info, 1)))
WEFT_PEER_CALL(removeAllowedIps, dev.removeAllowedIps(peer, prefixRecordsArg(info, 1)))

#undef WEFT_PEER_CALL

Napi::Value DeviceWrap::setPrivateKey(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  const uint8_t* key = nullptr;
  if (info.Length() > 0 && !info[0].IsNull()) key = keyArg(info, 0, "privateKey").Data();
  try {
    dev.setPrivateKey(key);
  } catch (...) {
    rethrowAsJs(env);
  }
  return env.Undefined();
}

Napi::Value DeviceWrap::initiateHandshake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  PeerId peer = uint32Arg(info, 0, "peer");
  try {
    switch (dev.initiateHandshake(peer)) {
      case Device::Initiate::Queued:
        return Napi::String::New(env, "queued");
      case Device::Initiate::NoEndpoint:
        return Napi::String::New(env, "no-endpoint");
      case Device::Initiate::NoKey:
        break;
    }
    return Napi::String::New(env, "no-key");
  } catch (...) {
    rethrowAsJs(env);
  }
}

Napi::Value DeviceWrap::setEndpoint(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  PeerId peer = uint32Arg(info, 0, "peer");
  std::string address = stringArg(info, 1, "address");
  uint16_t port = portArg(info, 2);
  Endpoint ep;
  if (!parseEndpoint(address, port, &ep)) throwWithCode(env, "EINVAL", "invalid endpoint address: " + address);
  try {
    dev.setEndpoint(peer, ep);
  } catch (...) {
    rethrowAsJs(env);
  }
  return env.Undefined();
}

Napi::Value DeviceWrap::installKeypair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  PeerId peer = uint32Arg(info, 0, "peer");
  if (info.Length() < 2 || !info[1].IsObject()) throwTypeError(env, "keypair must be an object");
  Napi::Object obj = info[1].As<Napi::Object>();
  KeypairSpec spec;
  spec.localIndex = indexField(obj, "localIndex");
  spec.remoteIndex = indexField(obj, "remoteIndex");
  copyKey(obj, "sendKey", spec.sendKey);
  copyKey(obj, "receiveKey", spec.receiveKey);
  Napi::Value initiator = obj.Get("initiator");
  if (!initiator.IsBoolean()) throwTypeError(env, "keypair.initiator must be a boolean");
  spec.initiator = initiator.As<Napi::Boolean>().Value();
  try {
    dev.installKeypair(peer, spec);
  } catch (...) {
    OPENSSL_cleanse(spec.sendKey, sizeof spec.sendKey);
    OPENSSL_cleanse(spec.receiveKey, sizeof spec.receiveKey);
    rethrowAsJs(env);
  }
  OPENSSL_cleanse(spec.sendKey, sizeof spec.sendKey);
  OPENSSL_cleanse(spec.receiveKey, sizeof spec.receiveKey);
  return env.Undefined();
}

Napi::Value DeviceWrap::sendKeepalive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  PeerId peer = uint32Arg(info, 0, "peer");
  try {
    return Napi::Boolean::New(env, dev.sendKeepalive(peer));
  } catch (...) {
    rethrowAsJs(env);
  }
}

Napi::Value DeviceWrap::sendToPeer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  PeerId peer = uint32Arg(info, 0, "peer");
  Napi::Uint8Array data = bytesArg(info, 1, "data");
  try {
    return Napi::Boolean::New(env, dev.sendToPeer(peer, data.Data(), data.ByteLength()));
  } catch (...) {
    rethrowAsJs(env);
  }
}

Napi::Value DeviceWrap::sendTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  std::string address = stringArg(info, 0, "address");
  uint16_t port = portArg(info, 1);
  Napi::Uint8Array data = bytesArg(info, 2, "data");
  Endpoint ep;
  if (!parseEndpoint(address, port, &ep)) throwWithCode(env, "EINVAL", "invalid address: " + address);
  dev.sendTo(ep, data.Data(), data.ByteLength());
  return env.Undefined();
}

Napi::Value DeviceWrap::peerState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  PeerId peer = uint32Arg(info, 0, "peer");
  PeerState s;
  try {
    s = dev.peerState(peer);
  } catch (...) {
    rethrowAsJs(env);
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("txBytes", Napi::BigInt::New(env, s.txBytes));
  o.Set("rxBytes", Napi::BigInt::New(env, s.rxBytes));
  o.Set("endpoint", s.endpoint.family ? Napi::Value(endpointObject(env, s.endpoint)) : env.Null());
  o.Set("lastAuthSent", Napi::Number::New(env, nsToMs(s.lastAuthSent)));
  o.Set("lastAuthReceived", Napi::Number::New(env, nsToMs(s.lastAuthReceived)));
  o.Set("firstDataSentSinceAuthReceived", Napi::Number::New(env, nsToMs(s.firstDataSentSinceAuthReceived)));
  o.Set("firstDataReceivedSinceAuthSent", Napi::Number::New(env, nsToMs(s.firstDataReceivedSinceAuthSent)));
  o.Set("hasCurrentKeypair", Napi::Boolean::New(env, s.hasCurrentKeypair));
  o.Set("staged", Napi::Number::New(env, static_cast<double>(s.staged)));
  return o;
}

Napi::Value DeviceWrap::counters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  if (!device_) return o;
  const Counters& c = device_->counters();
  auto set = [&](const char* key, const Counters::C& v) { o.Set(key, Napi::BigInt::New(env, v.load())); };
  set("tunRxPackets", c.tunRxPackets);
  set("tunTxPackets", c.tunTxPackets);
  set("udpRxPackets", c.udpRxPackets);
  set("udpTxPackets", c.udpTxPackets);
  set("dropMalformed", c.dropMalformed);
  set("dropUnknownIndex", c.dropUnknownIndex);
  set("dropDecrypt", c.dropDecrypt);
  set("dropReplay", c.dropReplay);
  set("dropSourceCheck", c.dropSourceCheck);
  set("dropInnerMalformed", c.dropInnerMalformed);
  set("dropNoPeer", c.dropNoPeer);
  set("dropStagedOverflow", c.dropStagedOverflow);
  set("dropHandshakeQueue", c.dropHandshakeQueue);
  set("dropExpiredKey", c.dropExpiredKey);
  set("icmpUnreachableSent", c.icmpUnreachableSent);
  set("dropNoEndpoint", c.dropNoEndpoint);
  set("udpTxErrors", c.udpTxErrors);
  set("tunTxErrors", c.tunTxErrors);
  set("tunRxSuperPackets", c.tunRxSuperPackets);
  set("tunTxSuperPackets", c.tunTxSuperPackets);
  set("udpTxGsoRuns", c.udpTxGsoRuns);
  set("udpRxGroRuns", c.udpRxGroRuns);
  set("handshakeInitiationsAccepted", c.handshakeInitiationsAccepted);
  set("handshakeResponsesAccepted", c.handshakeResponsesAccepted);
  set("handshakeCookieRepliesAccepted", c.handshakeCookieRepliesAccepted);
  set("handshakeCookieRepliesSent", c.handshakeCookieRepliesSent);
  set("handshakeDropBadMac1", c.handshakeDropBadMac1);
  set("handshakeDropRateLimited", c.handshakeDropRateLimited);
  set("handshakeDropUnknownPeerOrBadCrypto", c.handshakeDropUnknownPeerOrBadCrypto);
  set("handshakeDropReplayedTimestamp", c.handshakeDropReplayedTimestamp);
  set("handshakeDropInitiationFlood", c.handshakeDropInitiationFlood);
  set("handshakeDropUnknownIndex", c.handshakeDropUnknownIndex);
  set("handshakeDropBadCookieReply", c.handshakeDropBadCookieReply);
  set("handshakeEventsDropped", c.handshakeEventsDropped);
  return o;
}

// ---- TEST ONLY --------------------------------------------------------------------------------

Napi::Value DeviceWrap::testAgeKeypairs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  PeerId peer = uint32Arg(info, 0, "peer");
  // Up to ~31 years: far enough for any timer, small enough that ms * 1e6 fits an int64.
  int64_t ms = static_cast<int64_t>(integerArg(info, 1, "ms", 0, 1e12));
  try {
    dev.testAgeKeypairs(peer, ms * 1'000'000);
  } catch (...) {
    rethrowAsJs(env);
  }
  return env.Undefined();
}

Napi::Value DeviceWrap::testSetSendCounter(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = live(env);
  PeerId peer = uint32Arg(info, 0, "peer");
  uint64_t counter = uint64Arg(info, 1, "counter");
  try {
    return Napi::Boolean::New(env, dev.testSetSendCounter(peer, counter));
  } catch (...) {
    rethrowAsJs(env);
  }
}

}  // namespace weft
