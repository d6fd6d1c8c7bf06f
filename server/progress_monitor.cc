#include "server/progress_monitor.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rtnq::server {

ProgressMonitor::ProgressMonitor(const ServerOptions& o, Clock::time_point start)
    : idle_timeout_(o.idle_timeout_seconds),
      min_rate_(o.min_bytes_per_second),
      grace_(o.min_rate_grace_seconds),
      max_stream_(o.max_stream_seconds),
      max_message_(o.max_message_bytes),
      start_(start),
      last_(start) {
  bucket_ = Full();
}

double ProgressMonitor::Full() const {
  return min_rate_ > 0 ? grace_ + static_cast<double>(max_message_) / min_rate_ : 0;
}

void ProgressMonitor::Update(Clock::time_point now, ClientWait wait) {
  const double dt = std::max(0.0, std::chrono::duration<double>(now - last_).count());
  last_ = std::max(last_, now);
  if (wait_ != ClientWait::kNone) idle_ += dt;
  if (wait_ == ClientWait::kOwed && min_rate_ > 0) {
    bucket_ -= dt;
    owed_seconds_ += dt;
  }
  wait_ = wait;
}

void ProgressMonitor::Progress(int64_t bytes) {
  if (bytes <= 0) return;
  idle_ = 0;
  if (min_rate_ <= 0) return;
  owed_bytes_ += bytes;
  bucket_ += static_cast<double>(bytes) / min_rate_;
  if (bucket_ >= Full()) {
    bucket_ = Full();
    owed_seconds_ = 0;
    owed_bytes_ = 0;
  }
}

absl::Status ProgressMonitor::Check(Clock::time_point now, const char** reason) const {
  if (max_stream_ > 0 && std::chrono::duration<double>(now - start_).count() > max_stream_) {
    *reason = "max_stream_seconds";
    return absl::DeadlineExceededError(absl::StrCat("stream open for more than ", max_stream_,
                                                    " s (the server's --max_stream_seconds)"));
  }
  if (idle_timeout_ > 0 && idle_ > idle_timeout_) {
    *reason = "idle_timeout";
    return absl::DeadlineExceededError(
        absl::StrCat("stream idle for more than ", idle_timeout_,
                     " s: no data moved while waiting on the client (the server's idle timeout, "
                     "--idle_timeout; empty chunks and tensors without data do not count)"));
  }
  if (min_rate_ > 0 && bucket_ < 0) {
    *reason = "min_rate";
    return absl::DeadlineExceededError(absl::StrFormat(
        "stream too slow: %d data bytes moved in the last %.1f s spent waiting on the client, "
        "below the server's minimum rate of %.0f bytes/s (--min_bytes_per_second, with a "
        "%.0f s grace, --min_rate_grace)",
        owed_bytes_, owed_seconds_, min_rate_, grace_));
  }
  return absl::OkStatus();
}

std::chrono::milliseconds ProgressMonitor::SweepPeriod(const ServerOptions& o) {
  double shortest = 4;  // 1 s unless a rule is shorter
  for (double t :
       {o.idle_timeout_seconds, o.min_bytes_per_second > 0 ? o.min_rate_grace_seconds : 0,
        o.max_stream_seconds}) {
    if (t > 0) shortest = std::min(shortest, t);
  }
  return std::chrono::milliseconds(
      std::clamp<int64_t>(static_cast<int64_t>(shortest * 250), 10, 1000));
}

}  // namespace rtnq::server
