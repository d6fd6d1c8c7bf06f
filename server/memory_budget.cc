#include "server/memory_budget.h"

#include <algorithm>
#include <utility>

namespace rtnq::server {
namespace {

bool SameOwner(const std::weak_ptr<BudgetWaiter>& a, const std::weak_ptr<BudgetWaiter>& b) {
  return !a.owner_before(b) && !b.owner_before(a);
}

}  // namespace

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

int MemoryBudget::waiting() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(queue_.size());
}

bool MemoryBudget::TryReserve(int64_t bytes, const std::weak_ptr<BudgetWaiter>& waiter,
                              Wakeups& wake) {
  std::lock_guard<std::mutex> l(mu_);
  // Streams that ended without cancelling (they always cancel; this is a safety net) must not
  // block the line.
  while (!queue_.empty() && queue_.front().expired()) queue_.pop_front();
  const bool first = queue_.empty() || SameOwner(queue_.front(), waiter);
  if (!first || (used_ != 0 && used_ + bytes > limit_)) {
    if (std::none_of(queue_.begin(), queue_.end(),
                     [&](const auto& w) { return SameOwner(w, waiter); })) {
      queue_.push_back(waiter);
    }
    return false;
  }
  if (!queue_.empty()) queue_.pop_front();
  used_ += bytes;
  Changed();
  WakeHead(wake);  // the next in line may fit as well
  return true;
}

void MemoryBudget::CancelReservation(const std::weak_ptr<BudgetWaiter>& waiter, Wakeups& wake) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if (SameOwner(*it, waiter)) {
      const bool was_first = it == queue_.begin();
      queue_.erase(it);
      if (was_first) WakeHead(wake);
      return;
    }
  }
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
  // Wake every read waiter: each retries and re-registers if it still cannot proceed.
  for (auto& w : waiters_) wake.push_back(std::move(w));
  waiters_.clear();
  WakeHead(wake);
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
    if (SameOwner(w, waiter)) return;
  }
  waiters_.push_back(waiter);
}

void MemoryBudget::WakeHead(Wakeups& wake) {
  if (!queue_.empty()) wake.push_back(queue_.front());
}

void MemoryBudget::Changed() {
  peak_ = std::max(peak_, used_);
  if (on_change_) on_change_(used_);
}

bool StreamMemory::TryReserve(int64_t bytes, const std::weak_ptr<BudgetWaiter>& waiter,
                              Wakeups& wake) {
  // The stream's own releases come from its own events, which retry: no need to queue here.
  if (bytes > 0 && held_ != 0 && held_ + bytes > limit_) return false;
  if (!global_.TryReserve(bytes, waiter, wake)) return false;
  held_ += bytes;
  return true;
}

void StreamMemory::Adjust(int64_t delta, Wakeups& wake) {
  if (delta > 0) {
    global_.ForceReserve(delta);
  } else if (delta < 0) {
    global_.Release(-delta, wake);
  }
  held_ += delta;
}

TensorShare::TensorShare(int64_t fixed, int64_t floor, int64_t weight_num, int64_t weight_den)
    : fixed_(fixed),
      floor_(floor),
      weight_num_(weight_den > 0 && weight_num > weight_den ? weight_num : 1),
      weight_den_(weight_den > 0 && weight_num > weight_den ? weight_den : 1) {}

int64_t TensorShare::Weigh(int64_t raw) const {
  if (weight_num_ == weight_den_ || raw <= 0) return raw;
  const unsigned __int128 x = static_cast<unsigned __int128>(raw) * weight_num_;
  return static_cast<int64_t>((x + weight_den_ - 1) / weight_den_);
}

int64_t TensorShare::Granted() {
  granted_ = open_ = true;
  accounted_ = fixed_ + std::max(floor_, Data());
  return 0;
}

int64_t TensorShare::AddInput(int64_t raw) {
  if (granted_ && !open_) return 0;  // closed: the data of a failed tensor is dropped
  input_ += raw;
  return Sync();
}

int64_t TensorShare::ConsumeInput(int64_t raw) {
  input_ = std::max<int64_t>(0, input_ - raw);
  return Sync();
}

int64_t TensorShare::AddOutput(int64_t bytes) {
  output_ += bytes;
  return Sync();
}

int64_t TensorShare::RemoveOutput(int64_t bytes) {
  output_ = std::max<int64_t>(0, output_ - bytes);
  return Sync();
}

int64_t TensorShare::Close() {
  granted_ = true;
  open_ = false;
  input_ = 0;
  return Sync();
}

int64_t TensorShare::Sync() {
  const int64_t now = open_ ? fixed_ + std::max(floor_, Data()) : Data();
  const int64_t delta = now - accounted_;
  accounted_ = now;
  return delta;
}

}  // namespace rtnq::server
