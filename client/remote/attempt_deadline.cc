#include "client/remote/attempt_deadline.h"

namespace rtnq::client {

AttemptDeadline::AttemptDeadline(double seconds) : timeout_(seconds) {
  if (seconds > 0) thread_ = std::thread([this] { Run(); });
}

AttemptDeadline::~AttemptDeadline() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AttemptDeadline::Arm(grpc::ClientContext* context) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    context_ = context;
    fired_ = false;
    deadline_ = std::chrono::steady_clock::now() +
                std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout_);
  }
  cv_.notify_all();
}

bool AttemptDeadline::Disarm() {
  std::lock_guard<std::mutex> lock(mu_);
  context_ = nullptr;
  const bool fired = fired_;
  fired_ = false;
  return fired;
}

void AttemptDeadline::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (context_ == nullptr) {
      cv_.wait(lock);
    } else if (std::chrono::steady_clock::now() >= deadline_) {
      // Cancelling under the lock: Disarm (and so the context's destruction) waits for it.
      context_->TryCancel();
      context_ = nullptr;
      fired_ = true;
    } else {
      cv_.wait_until(lock, deadline_);
    }
  }
}

}  // namespace rtnq::client
