// mac1, mac2 and cookie replies (reference §4.4, whitepaper §5.4.4 and §5.4.7), in the addon's
// threads: whatever an unauthenticated sender can trigger must cost little and never reach
// JavaScript.
//
// mac1 proves the sender knows the receiver's public key, so datagrams from scanners are dropped
// after one keyed hash. Under load the responder also demands mac2, keyed with a "cookie": a MAC
// of the sender's address and port under a secret that rotates every two minutes. A sender
// without a valid cookie gets a cookie reply instead of a Diffie-Hellman, which proves it
// receives at the address it claims before it can cost us more. The MACs are always the last 32
// bytes of the message (mac1 then mac2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "../constants.h"
#include "../crypto/primitives.h"
#include "../endpoint.h"

namespace weft {

constexpr int64_t kCookieRefreshTime = 120'000'000'000;  // ns (COOKIE_REFRESH_TIME)

/** Where mac1 and mac2 start in a type 1 or 2 message of `len` bytes. */
inline size_t mac1Offset(size_t len) { return len - 2 * crypto::kMacSize; }
inline size_t mac2Offset(size_t len) { return len - crypto::kMacSize; }

/**
 * Responder side, one per device, keyed by our public key. Thread-safe: the UDP thread checks and
 * answers, the JavaScript thread changes the key.
 */
class CookieChecker {
 public:
  /** Null: no key, every mac1 fails. Changing the key invalidates mac1s; the secret is kept. */
  void setKey(const uint8_t* publicKey);
  bool checkMac1(const uint8_t* msg, size_t len) const;
  /** mac2 for a sender at `source`; false when no secret is current. */
  bool checkMac2(const uint8_t* msg, size_t len, const Endpoint& source, int64_t now) const;
  /**
   * The cookie reply to `msg` (whose mac1 was checked) into `out`: encrypted with the message's
   * mac1 as associated data, so only the sender of that very message can use it.
   */
  bool createReply(const uint8_t* msg, size_t len, const Endpoint& source, int64_t now,
                   uint8_t out[kCookieReplySize]);

 private:
  void cookieFor(const Endpoint& source, uint8_t out[crypto::kMacSize]) const;  // under mu_
  mutable std::mutex mu_;
  bool haveKey_ = false;
  uint8_t mac1Key_[crypto::kHashSize] = {};
  uint8_t cookieKey_[crypto::kHashSize] = {};
  uint8_t secret_[crypto::kHashSize] = {};
  int64_t secretSetAt_ = 0;
  bool haveSecret_ = false;
};

/**
 * Initiator side, one per peer, keyed by the peer's public key: writes mac1 (and mac2 while a
 * recent cookie is held) into our handshake messages and takes cookie replies. Thread-safe.
 */
class CookieGenerator {
 public:
  void setKey(const uint8_t remotePublic[crypto::kKeySize]);
  void addMacs(uint8_t* msg, size_t len, int64_t now);
  /**
   * Decrypts a cookie reply against the mac1 we last sent and keeps the cookie. False when it
   * answers nothing we sent or does not authenticate. A mac1 is answered once.
   */
  bool consumeReply(const uint8_t reply[kCookieReplySize], int64_t now);

 private:
  std::mutex mu_;
  uint8_t mac1Key_[crypto::kHashSize] = {};
  uint8_t cookieKey_[crypto::kHashSize] = {};
  uint8_t cookie_[crypto::kMacSize] = {};
  int64_t cookieSetAt_ = 0;
  bool haveCookie_ = false;
  uint8_t lastMac1_[crypto::kMacSize] = {};
  bool haveLastMac1_ = false;
};

/** HASH(label || public key) for the labels "mac1----" and "cookie--". */
void mac1KeyFor(const uint8_t publicKey[crypto::kKeySize], uint8_t out[crypto::kHashSize]);
void cookieKeyFor(const uint8_t publicKey[crypto::kKeySize], uint8_t out[crypto::kHashSize]);

}  // namespace weft
