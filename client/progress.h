// What a user sees while a quantize run works: a progress bar on a terminal, one line per tensor
// otherwise, nothing with --quiet.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <ostream>

#include "client/report.h"

namespace rtnq::client {

/// How progress is shown.
enum class ProgressMode : uint8_t { kBar, kLines, kQuiet };

/// Receives tensor completions from worker threads. Thread-safe.
class Progress {
 public:
  Progress(ProgressMode mode, std::ostream& out) : mode_(mode), out_(out) {}
  /// Virtual so that embedders (the Python binding) can forward progress to their own callback.
  virtual ~Progress() = default;
  /// The work ahead: tensors and input bytes (resumed ones are reported as done at once).
  virtual void Start(int tensors, uint64_t bytes);
  /// One tensor is written (or reused).
  virtual void TensorDone(const TensorReport& t);
  /// Clears the bar's line.
  virtual void Finish();

 private:
  void DrawBar();
  ProgressMode mode_;
  std::ostream& out_;
  std::mutex mu_;
  int total_ = 0;
  int done_ = 0;
  uint64_t total_bytes_ = 0;
  uint64_t done_bytes_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace rtnq::client
