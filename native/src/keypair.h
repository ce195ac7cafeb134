// One session's transport keys (a "keypair" in wireguard-go's words): created by the control plane
// after a handshake, held in a peer's previous/current/next slot and in the device's receiver-index
// map. Shared by pointer: a thread that looked it up keeps it alive while it encrypts or decrypts,
// and the keys are wiped when the last holder lets go.
#pragma once

#include <openssl/crypto.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "constants.h"
#include "replay.h"

namespace weft {

struct KeypairSpec {
  uint32_t localIndex = 0;
  uint32_t remoteIndex = 0;
  uint8_t sendKey[kAeadKeySize] = {};
  uint8_t receiveKey[kAeadKeySize] = {};
  bool initiator = false;
};

class Keypair {
 public:
  Keypair(const KeypairSpec& spec, int64_t createdNs)
      : localIndex(spec.localIndex), remoteIndex(spec.remoteIndex), initiator(spec.initiator), created(createdNs) {
    std::memcpy(sendKey, spec.sendKey, kAeadKeySize);
    std::memcpy(receiveKey, spec.receiveKey, kAeadKeySize);
  }
  ~Keypair() {
    OPENSSL_cleanse(sendKey, sizeof sendKey);
    OPENSSL_cleanse(receiveKey, sizeof receiveKey);
  }
  Keypair(const Keypair&) = delete;
  Keypair& operator=(const Keypair&) = delete;

  int64_t age(int64_t now) const { return now - created.load(std::memory_order_relaxed); }

  /** Records a received counter (after authentication); false for a replay or a too old one. */
  bool acceptCounter(uint64_t counter) {
    std::lock_guard<std::mutex> lock(replayMu_);
    return replay_.validate(counter);
  }

  const uint32_t localIndex;
  const uint32_t remoteIndex;
  const bool initiator;
  /**
   * Monotonic ns at creation. Only ever moved by the test hook Device::testAgeKeypairs (hence
   * atomic: the packet threads read it without the peer's lock); read it through age().
   */
  std::atomic<int64_t> created;
  uint8_t sendKey[kAeadKeySize];
  uint8_t receiveKey[kAeadKeySize];
  std::atomic<uint64_t> sendCounter{0};

 private:
  std::mutex replayMu_;
  ReplayWindow replay_;
};

}  // namespace weft
