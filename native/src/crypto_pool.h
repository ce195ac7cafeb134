// Fork-join helpers for the packet path's AEAD work: run(n, fn) calls fn(0..n-1) spread over the
// pool's threads and the caller, and returns when all are done. The caller keeps everything that
// needs order (nonce reservation before, the replay window and sending after), so per-peer order
// is exactly the order of the batch whatever thread sealed or opened which packet.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace weft {

class CryptoPool {
 public:
  /** `workers` extra threads (0: everything runs on the caller). */
  explicit CryptoPool(unsigned workers);
  ~CryptoPool();
  CryptoPool(const CryptoPool&) = delete;
  CryptoPool& operator=(const CryptoPool&) = delete;

  unsigned workers() const { return static_cast<unsigned>(threads_.size()); }
  /** fn(i) for every i < n; small batches run on the caller (waking threads costs more). */
  void run(size_t n, const std::function<void(size_t)>& fn);

  /** Worker count for `requested` (< 0: one per core beyond the two packet threads, at most 4). */
  static unsigned resolve(int requested);

 private:
  struct Job {
    const std::function<void(size_t)>* fn;
    size_t n;
    std::atomic<size_t> next{0};
    std::atomic<size_t> done{0};
  };
  /** Takes chunks of `job` until none are left; true when this call finished the last one. */
  static bool drain(Job& job);
  void loop();

  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable finished_;
  std::shared_ptr<Job> job_;  // the current job (workers hold their own reference while working)
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace weft
