// Test hooks over the handshake path's own C++ (noise.cc, cookie.cc, ratelimiter.cc, workers.cc),
// so unit tests check exactly what the devices run: known answers, cross-checks against the
// TypeScript implementation of the protocol, and bad input. The contract is `handshakeTest` in
// src/wireguard/native.ts.
#pragma once

#include <napi.h>

namespace weft {

/** The `handshakeTest` object of the addon. */
Napi::Object handshakeTestHooks(Napi::Env env);

}  // namespace weft
