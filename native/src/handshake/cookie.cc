#include "cookie.h"

#include <cstring>

namespace weft {
namespace {

using crypto::kMacSize;

void labelHash(const char* label, const uint8_t publicKey[crypto::kKeySize], uint8_t out[crypto::kHashSize]) {
  crypto::hash(out, reinterpret_cast<const uint8_t*>(label), 8, publicKey, crypto::kKeySize);
}

}  // namespace

void mac1KeyFor(const uint8_t publicKey[crypto::kKeySize], uint8_t out[crypto::kHashSize]) {
  labelHash("mac1----", publicKey, out);
}
void cookieKeyFor(const uint8_t publicKey[crypto::kKeySize], uint8_t out[crypto::kHashSize]) {
  labelHash("cookie--", publicKey, out);
}

// ---- responder --------------------------------------------------------------------------------

void CookieChecker::setKey(const uint8_t* publicKey) {
  std::lock_guard<std::mutex> lock(mu_);
  haveKey_ = publicKey != nullptr;
  if (publicKey) {
    mac1KeyFor(publicKey, mac1Key_);
    cookieKeyFor(publicKey, cookieKey_);
  } else {
    crypto::wipe(mac1Key_, sizeof mac1Key_);
    crypto::wipe(cookieKey_, sizeof cookieKey_);
  }
}

bool CookieChecker::checkMac1(const uint8_t* msg, size_t len) const {
  if (len < 2 * kMacSize) return false;
  uint8_t expected[kMacSize];
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!haveKey_) return false;
    crypto::mac(expected, mac1Key_, sizeof mac1Key_, msg, mac1Offset(len));
  }
  return crypto::equal(expected, msg + mac1Offset(len), kMacSize);
}

void CookieChecker::cookieFor(const Endpoint& source, uint8_t out[kMacSize]) const {
  // The address as the responder encodes it (local: no interop impact): IP bytes, port LE.
  uint8_t addr[18];
  size_t n = source.family == 6 ? 16 : 4;
  std::memcpy(addr, source.addr, n);
  addr[n] = static_cast<uint8_t>(source.port);
  addr[n + 1] = static_cast<uint8_t>(source.port >> 8);
  crypto::mac(out, secret_, sizeof secret_, addr, n + 2);
}

bool CookieChecker::checkMac2(const uint8_t* msg, size_t len, const Endpoint& source, int64_t now) const {
  if (len < 2 * kMacSize) return false;
  uint8_t cookie[kMacSize], expected[kMacSize];
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!haveSecret_ || now - secretSetAt_ >= kCookieRefreshTime) return false;
    cookieFor(source, cookie);
  }
  crypto::mac(expected, cookie, kMacSize, msg, mac2Offset(len));
  crypto::wipe(cookie, sizeof cookie);
  return crypto::equal(expected, msg + mac2Offset(len), kMacSize);
}

bool CookieChecker::createReply(const uint8_t* msg, size_t len, const Endpoint& source, int64_t now,
                                uint8_t out[kCookieReplySize]) {
  if (len < 8 + 2 * kMacSize) return false;
  uint8_t cookie[kMacSize], key[crypto::kHashSize];
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!haveKey_) return false;
    if (!haveSecret_ || now - secretSetAt_ >= kCookieRefreshTime) {
      crypto::randomBytes(secret_, sizeof secret_);
      secretSetAt_ = now;
      haveSecret_ = true;
    }
    cookieFor(source, cookie);
    std::memcpy(key, cookieKey_, sizeof key);
  }
  // type 3, receiver = the message's sender index, nonce (24 random), enc_cookie (16 + 16).
  std::memset(out, 0, 8);
  out[0] = 3;
  std::memcpy(out + 4, msg + 4, 4);
  crypto::randomBytes(out + 8, crypto::kXNonceSize);
  bool ok = crypto::xaeadSeal(out + 32, key, out + 8, cookie, kMacSize, msg + mac1Offset(len), kMacSize);
  crypto::wipe(cookie, sizeof cookie);
  crypto::wipe(key, sizeof key);
  return ok;
}

// ---- initiator --------------------------------------------------------------------------------

void CookieGenerator::setKey(const uint8_t remotePublic[crypto::kKeySize]) {
  std::lock_guard<std::mutex> lock(mu_);
  mac1KeyFor(remotePublic, mac1Key_);
  cookieKeyFor(remotePublic, cookieKey_);
  haveCookie_ = false;
  haveLastMac1_ = false;
  crypto::wipe(cookie_, sizeof cookie_);
}

void CookieGenerator::addMacs(uint8_t* msg, size_t len, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  crypto::mac(msg + mac1Offset(len), mac1Key_, sizeof mac1Key_, msg, mac1Offset(len));
  std::memcpy(lastMac1_, msg + mac1Offset(len), kMacSize);
  haveLastMac1_ = true;
  if (haveCookie_ && now - cookieSetAt_ < kCookieRefreshTime) {
    crypto::mac(msg + mac2Offset(len), cookie_, kMacSize, msg, mac2Offset(len));
  } else {
    haveCookie_ = false;
    crypto::wipe(cookie_, sizeof cookie_);
    std::memset(msg + mac2Offset(len), 0, kMacSize);
  }
}

bool CookieGenerator::consumeReply(const uint8_t reply[kCookieReplySize], int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!haveLastMac1_) return false;
  uint8_t cookie[kMacSize];
  if (!crypto::xaeadOpen(cookie, cookieKey_, reply + 8, reply + 32, kMacSize + crypto::kTagSize, lastMac1_, kMacSize))
    return false;
  std::memcpy(cookie_, cookie, kMacSize);
  crypto::wipe(cookie, sizeof cookie);
  cookieSetAt_ = now;
  haveCookie_ = true;
  haveLastMac1_ = false;
  return true;
}

}  // namespace weft
