#include "crypto_pool.h"

#include <algorithm>

namespace weft {
namespace {

// Packets per grab: large enough that the shared counter is not a hot spot, small enough that a
// 45-segment super-packet still spreads over a few threads.
constexpr size_t kChunk = 8;
// Below this the caller seals/opens alone: waking a thread costs more than a few packets' AEAD.
constexpr size_t kMinParallel = 2 * kChunk;

}  // namespace

CryptoPool::CryptoPool(unsigned workers) {
  for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this] { loop(); });
}

CryptoPool::~CryptoPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

unsigned CryptoPool::resolve(int requested) {
  if (requested >= 0) return static_cast<unsigned>(std::min(requested, 16));
  unsigned cores = std::thread::hardware_concurrency();
  return cores > 2 ? std::min(cores - 2, 4u) : 0;
}

bool CryptoPool::drain(Job& job) {
  for (;;) {
    size_t start = job.next.fetch_add(kChunk, std::memory_order_relaxed);
    if (start >= job.n) return false;
    size_t end = std::min(job.n, start + kChunk);
    for (size_t i = start; i < end; ++i) (*job.fn)(i);
    // acq_rel: the caller that sees the count complete also sees every packet's bytes.
    if (job.done.fetch_add(end - start, std::memory_order_acq_rel) + (end - start) == job.n) return true;
  }
}

void CryptoPool::run(size_t n, const std::function<void(size_t)>& fn) {
  if (threads_.empty() || n < kMinParallel) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = job;
    ++generation_;
  }
  wake_.notify_all();
  if (drain(*job)) return;
  std::unique_lock<std::mutex> lock(mu_);
  finished_.wait(lock, [&] { return job->done.load(std::memory_order_acquire) == n; });
}

void CryptoPool::loop() {
  uint64_t seen = 0;
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    // A worker that wakes after its job is done finds no index left and never touches fn: the
    // caller's function outlives every index handed out.
    if (job && drain(*job)) {
      std::lock_guard<std::mutex> lock(mu_);
      finished_.notify_all();
    }
  }
}

}  // namespace weft
