// Test hooks of the contract: ReplayWindow and one-shot aeadSeal/aeadOpen over the same C++ code
// the packet path runs (replay.h, aead.cc).
#pragma once

#include <napi.h>

#include "replay.h"

namespace weft {

class ReplayWindowWrap : public Napi::ObjectWrap<ReplayWindowWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit ReplayWindowWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ReplayWindowWrap>(info) {}

 private:
  Napi::Value validate(const Napi::CallbackInfo& info);
  Napi::Value reset(const Napi::CallbackInfo& info);
  ReplayWindow window_;
};

/** aeadSeal(key, counter, plaintext) -> Buffer (ciphertext + tag) */
Napi::Value aeadSeal(const Napi::CallbackInfo& info);
/** aeadOpen(key, counter, ciphertext) -> Buffer | null */
Napi::Value aeadOpen(const Napi::CallbackInfo& info);

}  // namespace weft
