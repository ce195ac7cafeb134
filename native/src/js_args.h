// Argument checking and error conversion shared by the N-API wrappers: every bad argument becomes
// a TypeError/RangeError, every SysError/UsageError a JS Error carrying `code`.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "allowed_ips.h"

namespace weft {

[[noreturn]] void throwTypeError(Napi::Env env, const std::string& message);
[[noreturn]] void throwRangeError(Napi::Env env, const std::string& message);
[[noreturn]] void throwWithCode(Napi::Env env, const std::string& code, const std::string& message);
/** Rethrows the current C++ exception (SysError, UsageError, std::exception) as a JS Error. */
[[noreturn]] void rethrowAsJs(Napi::Env env);

/** An integer Number in [min, max]. */
double integerArg(const Napi::CallbackInfo& info, size_t i, const char* what, double min, double max);
uint32_t uint32Arg(const Napi::CallbackInfo& info, size_t i, const char* what);
uint16_t portArg(const Napi::CallbackInfo& info, size_t i);
std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* what);
/** A Buffer or Uint8Array (the view, not a copy). */
Napi::Uint8Array bytesArg(const Napi::CallbackInfo& info, size_t i, const char* what);
/** A 32-byte key (Buffer or Uint8Array view). */
Napi::Uint8Array keyArg(const Napi::CallbackInfo& info, size_t i, const char* what);
/** A BigInt (or a safe integer Number) in [0, 2^64). */
uint64_t uint64Arg(const Napi::CallbackInfo& info, size_t i, const char* what);
/** Allowed-IPs records: a byte array of 18-byte [family 4|6][prefix length][16 address bytes]. */
std::vector<Prefix> prefixRecordsArg(const Napi::CallbackInfo& info, size_t i);

}  // namespace weft
