// NativeDevice (src/wireguard/native.ts) as an ObjectWrap over the Device core. Owns the device and
// its event queue. While started it keeps itself and the event loop alive (like a listening
// server) until close(); an environment cleanup hook stops the threads on process exit. After
// close() every method but `name`, now(), close(), mtu() and counters() throws (code ERR_CLOSED).
#pragma once

#include <napi.h>

#include <memory>

#include "device.h"
#include "events.h"

namespace weft {

class DeviceWrap : public Napi::ObjectWrap<DeviceWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  /** new DeviceWrap(name, mtu, onEvents) */
  explicit DeviceWrap(const Napi::CallbackInfo& info);
  ~DeviceWrap() override;

 private:
  static void cleanupHook(void* self);
  void shutdown(bool fromHook);
  Device& live(Napi::Env env);

  Napi::Value name(const Napi::CallbackInfo& info);
  Napi::Value now(const Napi::CallbackInfo& info);
  Napi::Value start(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value bind(const Napi::CallbackInfo& info);
  Napi::Value setFwmark(const Napi::CallbackInfo& info);
  Napi::Value mtu(const Napi::CallbackInfo& info);
  Napi::Value setPrivateKey(const Napi::CallbackInfo& info);
  Napi::Value addPeer(const Napi::CallbackInfo& info);
  Napi::Value setPresharedKey(const Napi::CallbackInfo& info);
  Napi::Value initiateHandshake(const Napi::CallbackInfo& info);
  Napi::Value abandonHandshake(const Napi::CallbackInfo& info);
  Napi::Value removePeer(const Napi::CallbackInfo& info);
  Napi::Value setEndpoint(const Napi::CallbackInfo& info);
  Napi::Value clearEndpoint(const Napi::CallbackInfo& info);
  Napi::Value insertAllowedIps(const Napi::CallbackInfo& info);
  Napi::Value removeAllowedIps(const Napi::CallbackInfo& info);
  Napi::Value clearAllowedIps(const Napi::CallbackInfo& info);
  Napi::Value installKeypair(const Napi::CallbackInfo& info);
  Napi::Value expireKeypairs(const Napi::CallbackInfo& info);
  Napi::Value clearStaged(const Napi::CallbackInfo& info);
  Napi::Value requestHandshakeAgain(const Napi::CallbackInfo& info);
  Napi::Value sendKeepalive(const Napi::CallbackInfo& info);
  Napi::Value sendToPeer(const Napi::CallbackInfo& info);
  Napi::Value sendTo(const Napi::CallbackInfo& info);
  Napi::Value peerState(const Napi::CallbackInfo& info);
  Napi::Value counters(const Napi::CallbackInfo& info);
  // TEST ONLY: see Device::testAgeKeypairs / testSetSendCounter.
  Napi::Value testAgeKeypairs(const Napi::CallbackInfo& info);
  Napi::Value testSetSendCounter(const Napi::CallbackInfo& info);

  napi_env env_;
  std::unique_ptr<Device> device_;
  EventQueue* queue_ = nullptr;  // deletes itself after release()
  bool hookAdded_ = false;
  bool shut_ = false;
  bool held_ = false;  // Ref()'d and event loop kept alive while started
};

}  // namespace weft
