// Module entry of weft_native: createDevice(name, mtu, onEvents), and the test hooks
// ReplayWindow, AllowedIpsTable, aeadSeal, aeadOpen, gsoSplit, groCoalesce, cryptoPoolCheck,
// handshakeTest. The contract is src/wireguard/native.ts.
#include <napi.h>

#include "crypto/test_hooks.h"
#include "device_wrap.h"
#include "handshake/test_hooks.h"
#include "test_hooks.h"

namespace weft {
namespace {

struct AddonData {
  Napi::FunctionReference deviceClass;
};

Napi::Value createDevice(const Napi::CallbackInfo& info) {
  auto* data = info.Env().GetInstanceData<AddonData>();
  std::vector<napi_value> args;
  for (size_t i = 0; i < info.Length(); ++i) args.push_back(info[i]);
  return data->deviceClass.New(args);
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->deviceClass = Napi::Persistent(DeviceWrap::define(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("createDevice", Napi::Function::New<createDevice>(env, "createDevice"));
  exports.Set("ReplayWindow", ReplayWindowWrap::define(env));
  exports.Set("AllowedIpsTable", AllowedIpsTableWrap::define(env));
  exports.Set("aeadSeal", Napi::Function::New<aeadSeal>(env, "aeadSeal"));
  exports.Set("aeadOpen", Napi::Function::New<aeadOpen>(env, "aeadOpen"));
  exports.Set("gsoSplit", Napi::Function::New<gsoSplit>(env, "gsoSplit"));
  exports.Set("groCoalesce", Napi::Function::New<groCoalesce>(env, "groCoalesce"));
  exports.Set("cryptoPoolCheck", Napi::Function::New<cryptoPoolCheck>(env, "cryptoPoolCheck"));
  exports.Set("cryptoTest", crypto::cryptoTestHooks(env));
  exports.Set("handshakeTest", handshakeTestHooks(env));
  return exports;
}

}  // namespace weft

static Napi::Object initWeftNative(Napi::Env env, Napi::Object exports) { return weft::init(env, exports); }

NODE_API_MODULE(weft_native, initWeftNative)
