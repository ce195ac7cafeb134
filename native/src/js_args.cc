#include "js_args.h"

#include <cmath>
#include <exception>

#include "sys_error.h"

namespace weft {

void throwTypeError(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }

void throwRangeError(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }

void throwWithCode(Napi::Env env, const std::string& code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  throw err;
}

void rethrowAsJs(Napi::Env env) {
  try {
    throw;
  } catch (const Napi::Error&) {
    throw;
  } catch (const SysError& e) {
    Napi::Error err = Napi::Error::New(env, e.what());
    err.Set("code", Napi::String::New(env, e.code()));
    err.Set("errno", Napi::Number::New(env, -e.err()));
    throw err;
  } catch (const UsageError& e) {
    throwWithCode(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throwWithCode(env, "ENOMEM", "out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

double integerArg(const Napi::CallbackInfo& info, size_t i, const char* what, double min, double max) {
  Napi::Env env = info.Env();
  if (info.Length() <= i || !info[i].IsNumber()) throwTypeError(env, std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v) || std::floor(v) != v) throwTypeError(env, std::string(what) + " must be an integer");
  if (v < min || v > max) throwRangeError(env, std::string(what) + " out of range");
  return v;
}

uint32_t uint32Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return static_cast<uint32_t>(integerArg(info, i, what, 0, 4294967295.0));
}

uint16_t portArg(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<uint16_t>(integerArg(info, i, "port", 0, 65535));
}

std::string stringArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throwTypeError(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Uint8Array bytesArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() > i && info[i].IsTypedArray()) {
    Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
    if (ta.TypedArrayType() == napi_uint8_array) return ta.As<Napi::Uint8Array>();
  }
  throwTypeError(info.Env(), std::string(what) + " must be a Buffer or Uint8Array");
}

Napi::Uint8Array keyArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Uint8Array key = bytesArg(info, i, what);
  if (key.ByteLength() != 32) throwRangeError(info.Env(), std::string(what) + " must be 32 bytes");
  return key;
}

uint64_t uint64Arg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Env env = info.Env();
  if (info.Length() > i && info[i].IsBigInt()) {
    int sign = 0;
    size_t words = 2;
    uint64_t w[2] = {0, 0};
    info[i].As<Napi::BigInt>().ToWords(&sign, &words, w);
    // On return `words` is the count the value needs, which may exceed the two provided.
    bool zero = words == 0 || (w[0] == 0 && (words < 2 || w[1] == 0) && words <= 2);
    if (sign != 0 && !zero) throwRangeError(env, std::string(what) + " must not be negative");
    if (words > 2 || (words == 2 && w[1] != 0)) throwRangeError(env, std::string(what) + " must be below 2^64");
    return w[0];
  }
  if (info.Length() > i && info[i].IsNumber()) return static_cast<uint64_t>(integerArg(info, i, what, 0, 9007199254740991.0));
  throwTypeError(env, std::string(what) + " must be a bigint");
}

std::vector<Prefix> prefixRecordsArg(const Napi::CallbackInfo& info, size_t i) {
  constexpr size_t kRecordSize = 18;
  Napi::Uint8Array records = bytesArg(info, i, "records");
  const uint8_t* p = records.Data();
  size_t len = records.ByteLength();
  if (len % kRecordSize != 0) throwRangeError(info.Env(), "records must be a multiple of 18 bytes");
  std::vector<Prefix> out;
  out.reserve(len / kRecordSize);
  for (size_t off = 0; off < len; off += kRecordSize) {
    Prefix prefix;
    if (!makePrefix(p[off], p[off + 1], p + off + 2, &prefix))
      throwRangeError(info.Env(), "bad prefix record at byte " + std::to_string(off));
    out.push_back(prefix);
  }
  return out;
}

}  // namespace weft
