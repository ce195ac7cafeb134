#include "workers.h"

#include <algorithm>

#include "../device.h"

namespace weft {

HandshakeWorkers& HandshakeWorkers::instance() {
  // Never destroyed: its threads wait on it until the process ends (every device has detached
  // by then, so no job runs during exit).
  static HandshakeWorkers* self = new HandshakeWorkers();
  return *self;
}

HandshakeWorkers::HandshakeWorkers() {
  unsigned cores = std::thread::hardware_concurrency();
  threadCount_ = std::clamp<unsigned>(cores, 1, 4);
}

void HandshakeWorkers::startLocked() {
  if (!threads_.empty()) return;
  for (size_t i = 0; i < threadCount_; ++i) {
    threads_.emplace_back([this] { run(); });
    threads_.back().detach();
  }
}

bool HandshakeWorkers::noteAndCheckLoad(int64_t now) {
  int64_t start = windowStart_.load(std::memory_order_relaxed);
  if (now - start >= 1'000'000'000 && windowStart_.compare_exchange_strong(start, now, std::memory_order_relaxed))
    windowCount_.store(0, std::memory_order_relaxed);
  uint64_t count = windowCount_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (count > kUnderLoadRate || networkDepth_.load(std::memory_order_relaxed) >= kUnderLoadQueueDepth) {
    int64_t until = now + kUnderLoadAfter;
    int64_t cur = underLoadUntil_.load(std::memory_order_relaxed);
    while (cur < until && !underLoadUntil_.compare_exchange_weak(cur, until, std::memory_order_relaxed)) {
    }
  }
  return underLoad(now);
}

bool HandshakeWorkers::submit(const HandshakeJob& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (network_.size() >= kHandshakeQueueCapacity) return false;
    network_.push_back(job);
    networkDepth_.store(network_.size(), std::memory_order_relaxed);
    startLocked();
  }
  wake_.notify_one();
  return true;
}

void HandshakeWorkers::submitLocal(const HandshakeJob& job) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    local_.push_back(job);
    startLocked();
  }
  wake_.notify_one();
}

void HandshakeWorkers::detach(Device* device) {
  std::unique_lock<std::mutex> lock(mu_);
  auto gone = [device](const HandshakeJob& j) { return j.device == device; };
  local_.erase(std::remove_if(local_.begin(), local_.end(), gone), local_.end());
  network_.erase(std::remove_if(network_.begin(), network_.end(), gone), network_.end());
  networkDepth_.store(network_.size(), std::memory_order_relaxed);
  idle_.wait(lock, [&] { return running_.find(device) == running_.end(); });
}

size_t HandshakeWorkers::queued() {
  std::lock_guard<std::mutex> lock(mu_);
  return local_.size() + network_.size();
}

void HandshakeWorkers::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    wake_.wait(lock, [&] { return !local_.empty() || !network_.empty(); });
    auto& from = !local_.empty() ? local_ : network_;
    HandshakeJob job = from.front();
    from.pop_front();
    networkDepth_.store(network_.size(), std::memory_order_relaxed);
    ++running_[job.device];
    lock.unlock();
    job.device->runHandshakeJob(job);
    lock.lock();
    auto it = running_.find(job.device);
    if (--it->second == 0) {
      running_.erase(it);
      idle_.notify_all();
    }
  }
}

}  // namespace weft
