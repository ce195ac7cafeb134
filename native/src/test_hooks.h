// Test hooks of the contract: ReplayWindow, AllowedIpsTable, one-shot aeadSeal/aeadOpen and the
// offload split/coalesce over the same C++ code the packet path runs (replay.h, allowed_ips.cc,
// aead.cc, offload.cc).
#pragma once

#include <napi.h>

#include "allowed_ips.h"
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

/**
 * A standalone cryptokey routing table (the device's AllowedIps class, without a device):
 * insert(peer, records), remove(peer, records), clear(peer), lookup(family, address) -> peer | 0,
 * size(). Peer 0 is refused, since lookup answers 0 for "no peer".
 */
class AllowedIpsTableWrap : public Napi::ObjectWrap<AllowedIpsTableWrap> {
 public:
  static Napi::Function define(Napi::Env env);
  explicit AllowedIpsTableWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AllowedIpsTableWrap>(info) {}

 private:
  Napi::Value insert(const Napi::CallbackInfo& info);
  Napi::Value remove(const Napi::CallbackInfo& info);
  Napi::Value clear(const Napi::CallbackInfo& info);
  Napi::Value lookup(const Napi::CallbackInfo& info);
  Napi::Value size(const Napi::CallbackInfo& info);
  AllowedIps table_;
};

/** aeadSeal(key, counter, plaintext) -> Buffer (ciphertext + tag) */
Napi::Value aeadSeal(const Napi::CallbackInfo& info);
/** aeadOpen(key, counter, ciphertext) -> Buffer | null */
Napi::Value aeadOpen(const Napi::CallbackInfo& info);
/** gsoSplit(header, packet) -> Buffer[] | null: the segments the device encrypts for one TUN read. */
Napi::Value gsoSplit(const Napi::CallbackInfo& info);
/**
 * groCoalesce(packets, {refuseMerged?}) -> {header, packet}[]: the TUN writes for one batch of
 * decrypted packets (refuseMerged: as if the TUN rejected every super-packet).
 */
Napi::Value groCoalesce(const Napi::CallbackInfo& info);
/**
 * cryptoPoolCheck(workers, sizes) -> -1 | run index: runs a CryptoPool once per size and checks
 * that every index was processed exactly once; answers the first run that was not.
 */
Napi::Value cryptoPoolCheck(const Napi::CallbackInfo& info);

}  // namespace weft
