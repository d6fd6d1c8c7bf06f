// Bounding the bytes a server holds for its streams: a global budget shared by all streams and a
// per-stream one. Accounted bytes are tensor data received and not yet consumed (input buffers),
// codes kept for packing with the packed outputs made from them, and output bytes queued for
// writing; the core's transient working memory is not counted.
//
// The rules (docs/PROTOCOL.md, "Memory and backpressure"):
//  * A tensor that must be buffered whole reserves its total_bytes when its header arrives,
//    before any of its data is read; a row-streamed tensor with a packed output reserves its
//    codes and packed outputs (TensorJob::reserve_bytes) the same way. The reservation is granted
//    when it fits both budgets, or when it does not fit but the stream (resp. the whole server)
//    holds nothing else: a tensor larger than a budget but under max_tensor_bytes still progresses,
//    alone. Until granted, the stream reads nothing more (backpressure).
//  * Row-streamed and passed-through tensors are accounted chunk by chunk as they arrive; the
//    stream issues its next read only while it is under its own budget and the server under the
//    global one, or when it holds nothing that will be released without more input (so a row
//    wider than the budget cannot deadlock). Overshoot is bounded by one message per stream.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace rtnq::server {

/// Something to notify when memory is released (a stream waiting to read).
class BudgetWaiter {
 public:
  virtual ~BudgetWaiter() = default;
  /// Called without any budget lock held; may take the waiter's own locks.
  virtual void OnMemoryAvailable() = 0;
};

/// Waiters to notify once the caller has dropped its own locks (notifying under a stream's lock
/// could deadlock two streams waking each other).
using Wakeups = std::vector<std::weak_ptr<BudgetWaiter>>;

/// Notifies each waiter that is still alive.
void WakeAll(Wakeups& wakeups);

/// The global in-flight byte budget. Thread-safe.
class MemoryBudget {
 public:
  /// `on_change` (optional) receives the new total after every change, e.g. to set a gauge.
  explicit MemoryBudget(int64_t limit, std::function<void(int64_t)> on_change = {});

  int64_t limit() const { return limit_; }
  int64_t used() const;
  /// The highest `used` seen so far (tests and benchmarks check the bound with it).
  int64_t peak() const;

  /// Takes `bytes` if they fit, or if nothing at all is in use. On failure registers `waiter`
  /// (when given) in the same critical section, so that no Release in between is missed.
  bool TryReserve(int64_t bytes, const std::weak_ptr<BudgetWaiter>* waiter = nullptr);
  /// True while the budget is not exhausted; otherwise registers `waiter` atomically.
  bool Available(const std::weak_ptr<BudgetWaiter>* waiter = nullptr);
  /// Takes `bytes` unconditionally (they are already in memory).
  void ForceReserve(int64_t bytes);
  /// Returns `bytes`; the waiters registered so far move to `wake`.
  void Release(int64_t bytes, Wakeups& wake);

 private:
  void Changed();                                        // with mu_ held
  void AddWaiter(const std::weak_ptr<BudgetWaiter>& w);  // with mu_ held

  const int64_t limit_;
  std::function<void(int64_t)> on_change_;
  mutable std::mutex mu_;
  int64_t used_ = 0;
  int64_t peak_ = 0;
  std::vector<std::weak_ptr<BudgetWaiter>> waiters_;
};

/// One stream's share: its own counter and limit on top of the global budget. Not thread-safe
/// (the stream's lock guards it).
class StreamMemory {
 public:
  StreamMemory(MemoryBudget& global, int64_t limit) : global_(global), limit_(limit) {}
  StreamMemory(const StreamMemory&) = delete;
  StreamMemory& operator=(const StreamMemory&) = delete;

  int64_t held() const { return held_; }

  /// A whole-tensor reservation, by the rule in this file's comment. When the global budget
  /// refuses, `waiter` is registered to hear of the next release (the stream's own releases come
  /// from its own events).
  bool TryReserve(int64_t bytes, const std::weak_ptr<BudgetWaiter>& waiter);
  /// Bytes that already arrived (or were produced).
  void ForceReserve(int64_t bytes);
  void Release(int64_t bytes, Wakeups& wake);
  void ReleaseAll(Wakeups& wake) { Release(held_, wake); }
  /// True while both this stream and the server are under their budgets; registers `waiter`
  /// when the global budget is the obstacle.
  bool UnderLimits(const std::weak_ptr<BudgetWaiter>& waiter) {
    return held_ < limit_ && global_.Available(&waiter);
  }
  MemoryBudget& global() { return global_; }

 private:
  MemoryBudget& global_;
  const int64_t limit_;
  int64_t held_ = 0;
};

}  // namespace rtnq::server
