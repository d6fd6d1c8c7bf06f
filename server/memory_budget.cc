#include "server/memory_budget.h"

#include <algorithm>
#include <utility>

namespace rtnq::server {

void WakeAll(Wakeups& wakeups) {
  for (auto& w : wakeups) {
    if (auto waiter = w.lock()) waiter->OnMemoryAvailable();
  }
  wakeups.clear();
}

MemoryBudget::MemoryBudget(int64_t limit, std::function<void(int64_t)> on_change)
    : limit_(limit), on_change_(std::move(on_change)) {}

int64_t MemoryBudget::used() const {
  std::lock_guard<std::mutex> l(mu_);
  return used_;
}

int64_t MemoryBudget::peak() const {
  std::lock_guard<std::mutex> l(mu_);
  return peak_;
}

bool MemoryBudget::TryReserve(int64_t bytes, const std::weak_ptr<BudgetWaiter>* waiter) {
  std::lock_guard<std::mutex> l(mu_);
  if (used_ != 0 && used_ + bytes > limit_) {
    if (waiter != nullptr) AddWaiter(*waiter);
    return false;
  }
  used_ += bytes;
  Changed();
  return true;
}

void MemoryBudget::ForceReserve(int64_t bytes) {
  if (bytes == 0) return;
  std::lock_guard<std::mutex> l(mu_);
  used_ += bytes;
  Changed();
}

void MemoryBudget::Release(int64_t bytes, Wakeups& wake) {
  std::lock_guard<std::mutex> l(mu_);
  used_ -= bytes;
  if (bytes != 0) Changed();
  // Wake every waiter: each retries and re-registers if it still cannot proceed.
  for (auto& w : waiters_) wake.push_back(std::move(w));
  waiters_.clear();
}

bool MemoryBudget::Available(const std::weak_ptr<BudgetWaiter>* waiter) {
  std::lock_guard<std::mutex> l(mu_);
  if (used_ < limit_) return true;
  if (waiter != nullptr) AddWaiter(*waiter);
  return false;
}

void MemoryBudget::AddWaiter(const std::weak_ptr<BudgetWaiter>& waiter) {
  // A blocked stream re-registers on each of its events; keep one entry per stream.
  for (const auto& w : waiters_) {
    if (!w.owner_before(waiter) && !waiter.owner_before(w)) return;
  }
  waiters_.push_back(waiter);
}

void MemoryBudget::Changed() {
  peak_ = std::max(peak_, used_);
  if (on_change_) on_change_(used_);
}

bool StreamMemory::TryReserve(int64_t bytes, const std::weak_ptr<BudgetWaiter>& waiter) {
  if (held_ != 0 && held_ + bytes > limit_) return false;
  if (!global_.TryReserve(bytes, &waiter)) return false;
  held_ += bytes;
  return true;
}

void StreamMemory::ForceReserve(int64_t bytes) {
  global_.ForceReserve(bytes);
  held_ += bytes;
}

void StreamMemory::Release(int64_t bytes, Wakeups& wake) {
  held_ -= bytes;
  global_.Release(bytes, wake);
}

}  // namespace rtnq::server
