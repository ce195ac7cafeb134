// The process's handshake workers: one budget for the expensive half of every handshake (the
// Diffie-Hellman work of the Noise messages), shared by all devices of the process.
//
// Packet threads (device_handshake.cc) do the cheap checks on their own thread: sizes, mac1, and
// under load mac2 (or a cookie reply) and the per-source rate limit. What passes waits here, in
// one bounded FIFO for the whole process, for a small pool of threads; a full queue drops and
// counts. "Under load" is process-wide too: the queue is deep, or more mac1-valid messages arrived
// in the last second than a responder should ever spend Diffie-Hellman on. So a gateway with ten
// devices gives an attacker who spreads a flood over the ten ports nothing more than one port
// would: the same queue, the same load signal, the same rate limiter. JavaScript never sees any of
// it; it hears only of completed handshakes.
//
// Our own initiations (timer-driven, at most one queued per peer) go to a separate queue that is
// served first and never dropped.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "../allowed_ips.h"
#include "../endpoint.h"
#include "ratelimiter.h"

namespace weft {

class Device;

struct HandshakeJob {
  enum class Kind : uint8_t { Initiation, Response, Initiate };
  Device* device = nullptr;
  Kind kind = Kind::Initiation;
  uint8_t msg[148];
  size_t len = 0;
  Endpoint source;
  PeerId peer = 0;  // Initiate
};

/** Sizes and thresholds (wireguard-go: QueueHandshakeSize 1024, under load at 1/8 of it). */
constexpr size_t kHandshakeQueueCapacity = 1024;
constexpr size_t kUnderLoadQueueDepth = kHandshakeQueueCapacity / 8;
/** mac1-valid handshake messages per second, process-wide, beyond which cookies are demanded. */
constexpr uint64_t kUnderLoadRate = 1000;
/** Once under load, for at least this long (UNDER_LOAD_AFTER). */
constexpr int64_t kUnderLoadAfter = 1'000'000'000;

class HandshakeWorkers {
 public:
  /** The process's instance; its threads start with the first job. */
  static HandshakeWorkers& instance();

  /** Counts one mac1-valid message toward the load and answers whether the process is under load. */
  bool noteAndCheckLoad(int64_t now);
  bool underLoad(int64_t now) const { return now < underLoadUntil_.load(std::memory_order_relaxed); }
  /** A message from the network; false (dropped) when the queue is full. */
  bool submit(const HandshakeJob& job);
  /** Our own work (an initiation to create): never dropped. */
  void submitLocal(const HandshakeJob& job);
  /** Drops the device's queued jobs and waits for those running. After it, none runs for `device`. */
  void detach(Device* device);
  RateLimiter& rateLimiter() { return limiter_; }
  size_t queued();

  /** Threads the pool runs (for tests and figures). */
  size_t threads() const { return threadCount_; }

 private:
  HandshakeWorkers();
  void run();
  void startLocked();

  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<HandshakeJob> local_;
  std::deque<HandshakeJob> network_;
  std::unordered_map<Device*, size_t> running_;
  std::vector<std::thread> threads_;
  size_t threadCount_;
  RateLimiter limiter_;

  /** network_.size(), readable without the lock: the load check runs for every mac1-valid message. */
  std::atomic<size_t> networkDepth_{0};
  std::atomic<int64_t> windowStart_{0};
  std::atomic<uint64_t> windowCount_{0};
  std::atomic<int64_t> underLoadUntil_{0};
};

}  // namespace weft
