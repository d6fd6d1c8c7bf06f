// Bounding the bytes a server holds for its streams: a global budget shared by all streams, a
// per-stream one, and per tensor a share that says what the tensor holds. Accounted bytes are
// tensor data received and not yet consumed, codes kept for packing with the packed outputs made
// from them, and output bytes queued for writing; the core's transient working memory is not
// counted (docs/PROTOCOL.md, "Memory and backpressure", gives it per path).
//
// The rules:
//  * Every tensor takes a reservation when its header has been planned, before any of its data is
//    read (TensorShare: a fixed part for the codes kept for packing, and a floor: one row being
//    assembled for row streaming, the whole input or its outputs if larger when buffered; 0 for a
//    passed-through tensor). Reservations are granted in arrival order (a FIFO over the whole
//    server): the oldest waiting one is granted when it fits the global budget, or when nothing
//    at all is in use; the stream's own budget must fit too, unless the stream holds nothing.
//    So a reservation larger than a budget is granted alone and in bounded time (later ones queue
//    behind it), and one larger than --max_reservation_bytes is refused at its header.
//  * A tensor's data (input not yet consumed, weighted by its output/input ratio when its outputs
//    are larger, plus its outputs not yet written) is accounted on top of its floor only where it
//    exceeds it: the stream reads on while the open tensor's data is under its floor, or while the
//    stream is under its budget and the server under the global one. Quantizing a step turns
//    accounted input into accounted outputs of at most the same size, so it never adds.
//  * The bound (tests check it with peak()): accounted bytes <= max(memory_budget_bytes,
//    largest reservation) + max_streams x w x max_message_bytes, where w is the largest
//    output/input ratio of a row-streamed tensor (1 except CODES with groups of fewer than 8
//    elements on F16/BF16 inputs or 3 on F32, at most 4.5), because each stream's one read in
//    flight may bring a message beyond its limits. The server's memory adds gRPC's buffers, the
//    messages being parsed and the steps' working memory: docs/PROTOCOL.md writes it out.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace rtnq::server {

/// Something to notify when memory is released (a stream waiting to read or to reserve).
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

/// The global in-flight byte budget with its FIFO of reservations. Thread-safe.
class MemoryBudget {
 public:
  /// `on_change` (optional) receives the new total after every change, e.g. to set a gauge.
  explicit MemoryBudget(int64_t limit, std::function<void(int64_t)> on_change = {});

  int64_t limit() const { return limit_; }
  int64_t used() const;
  /// The highest `used` seen so far (tests and benchmarks check the bound with it).
  int64_t peak() const;
  /// Reservations waiting in the FIFO.
  int waiting() const;

  /// Takes `bytes` when `waiter` is the oldest waiting reservation (or none waits) and they fit,
  /// or when nothing at all is in use. Otherwise queues `waiter` (keeping its place when it
  /// already waits); it is woken when it should retry. A grant wakes the next in line.
  bool TryReserve(int64_t bytes, const std::weak_ptr<BudgetWaiter>& waiter, Wakeups& wake);
  /// Removes `waiter` from the FIFO (it ended while waiting); no-op when it does not wait.
  void CancelReservation(const std::weak_ptr<BudgetWaiter>& waiter, Wakeups& wake);
  /// True while the budget is not exhausted; otherwise registers `waiter` atomically.
  bool Available(const std::weak_ptr<BudgetWaiter>* waiter = nullptr);
  /// Takes `bytes` unconditionally (they are already in memory).
  void ForceReserve(int64_t bytes);
  /// Returns `bytes`; the read waiters registered so far and the first reservation in line move
  /// to `wake`.
  void Release(int64_t bytes, Wakeups& wake);

 private:
  void Changed();                                        // with mu_ held
  void AddWaiter(const std::weak_ptr<BudgetWaiter>& w);  // with mu_ held
  void WakeHead(Wakeups& wake);                          // with mu_ held

  const int64_t limit_;
  std::function<void(int64_t)> on_change_;
  mutable std::mutex mu_;
  int64_t used_ = 0;
  int64_t peak_ = 0;
  std::vector<std::weak_ptr<BudgetWaiter>> waiters_;  // readers waiting for any release
  std::deque<std::weak_ptr<BudgetWaiter>> queue_;     // reservations, oldest first
};

/// One stream's share: its own counter and limit on top of the global budget. Not thread-safe
/// (the stream's lock guards it).
class StreamMemory {
 public:
  StreamMemory(MemoryBudget& global, int64_t limit) : global_(global), limit_(limit) {}
  StreamMemory(const StreamMemory&) = delete;
  StreamMemory& operator=(const StreamMemory&) = delete;

  int64_t held() const { return held_; }
  int64_t limit() const { return limit_; }

  /// A tensor's reservation: it must fit the stream's budget unless the stream holds nothing
  /// (a reservation of 0 always does), then the global FIFO decides (MemoryBudget::TryReserve).
  bool TryReserve(int64_t bytes, const std::weak_ptr<BudgetWaiter>& waiter, Wakeups& wake);
  void CancelReservation(const std::weak_ptr<BudgetWaiter>& waiter, Wakeups& wake) {
    global_.CancelReservation(waiter, wake);
  }
  /// Applies a change of what the stream holds: more (already in memory) or less.
  void Adjust(int64_t delta, Wakeups& wake);
  void ReleaseAll(Wakeups& wake) { Adjust(-held_, wake); }
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

/// What one tensor holds, as its stream accounts it: fixed + max(floor, data) from the grant of
/// its reservation (fixed + floor) until its last step; afterwards only its outputs not yet
/// written. data = its input not yet consumed, weighted by `weight_num / weight_den` when that
/// ratio is above 1, plus its outputs not yet written. Each change returns the delta to apply to
/// the stream (StreamMemory::Adjust). Not thread-safe: the stream's lock guards it.
class TensorShare {
 public:
  TensorShare() = default;
  TensorShare(int64_t fixed, int64_t floor, int64_t weight_num, int64_t weight_den);

  int64_t fixed() const { return fixed_; }
  int64_t floor() const { return floor_; }
  int64_t reservation() const { return fixed_ + floor_; }
  /// The input bytes `raw` bytes of input are accounted as (rounded up).
  int64_t Weigh(int64_t raw) const;
  int64_t accounted() const { return accounted_; }
  /// True while the reservation is held and the data is under the floor: reading on cannot
  /// take the stream beyond what it reserved by more than one message.
  bool HasRoom() const { return open_ && Data() < floor_; }

  /// The reservation was granted (its bytes are already taken); returns 0.
  int64_t Granted();
  int64_t AddInput(int64_t raw);
  int64_t ConsumeInput(int64_t raw);
  int64_t AddOutput(int64_t bytes);
  int64_t RemoveOutput(int64_t bytes);
  /// The tensor's last step ran (or it failed): its input and reservation are gone.
  int64_t Close();

 private:
  int64_t Data() const { return Weigh(input_) + output_; }
  int64_t Sync();  // recomputes accounted_, returns the change

  int64_t fixed_ = 0, floor_ = 0;
  int64_t weight_num_ = 1, weight_den_ = 1;
  bool granted_ = false;
  bool open_ = false;  // granted and not yet closed
  int64_t input_ = 0, output_ = 0;
  int64_t accounted_ = 0;
};

}  // namespace rtnq::server
