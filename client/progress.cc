#include "client/progress.h"

#include "absl/strings/str_format.h"
#include "client/checkpoint_util.h"

namespace rtnq::client {

void Progress::Start(int tensors, uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  total_ = tensors;
  total_bytes_ = bytes;
  start_ = std::chrono::steady_clock::now();
  if (mode_ == ProgressMode::kBar) DrawBar();
}

void Progress::TensorDone(const TensorReport& t) {
  std::lock_guard<std::mutex> lock(mu_);
  ++done_;
  done_bytes_ += t.bytes_in;
  if (mode_ == ProgressMode::kBar) {
    DrawBar();
  } else if (mode_ == ProgressMode::kLines) {
    std::string what;
    if (t.action == "quantized") {
      what = absl::StrFormat("%-16s %-28s SNR %6.2f dB  %7.1f ms  %s%s%s", ConfigSummary(t.config),
                             t.decided_by, t.metrics.snr_db, t.wall_seconds * 1000, t.served_by,
                             t.attempts > 1 ? absl::StrFormat(" (%d attempts)", t.attempts) : "",
                             t.resumed ? " (resumed)" : "");
    } else {
      what = absl::StrCat(t.action, ": ", t.reason);
    }
    out_ << absl::StrFormat("[%*d/%d] %-48s %s\n", std::to_string(total_).size(), done_, total_,
                            t.name, what);
  }
}

void Progress::DrawBar() {
  constexpr int kWidth = 30;
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_bytes_ == 0 ? 1.0 : double(done_bytes_) / double(total_bytes_);
  const int filled = static_cast<int>(frac * kWidth);
  const double rate = secs > 0 ? done_bytes_ / 1048576.0 / secs : 0;
  const double eta = rate > 0 ? (total_bytes_ - done_bytes_) / 1048576.0 / rate : 0;
  out_ << absl::StrFormat("\r[%s%s] %d/%d tensors  %s/%s  %.1f MB/s  ETA %.0fs \x1b[K",
                          std::string(filled, '#'), std::string(kWidth - filled, '.'), done_,
                          total_, HumanBytes(done_bytes_), HumanBytes(total_bytes_), rate, eta);
  out_.flush();
}

void Progress::Warn(const std::string& line) {
  std::lock_guard<std::mutex> lock(mu_);
  out_ << "warning: " << line << "\n";
  out_.flush();
}

void Progress::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (mode_ == ProgressMode::kBar) out_ << "\r\x1b[K";
  out_.flush();
}

}  // namespace rtnq::client
