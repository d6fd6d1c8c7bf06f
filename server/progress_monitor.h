// When a stream makes too little progress: the idle timeout, the minimum data rate and the
// longest stream duration, measured over the time the stream waits on its client (never over
// time it waits for the server's memory or work). Pure bookkeeping on times it is given, so tests
// and the fuzzer drive it with their own clock.
#pragma once

#include <chrono>
#include <cstdint>

#include "absl/status/status.h"
#include "server/server_options.h"

namespace rtnq::server {

/// What a stream waits for, as its state machine sees it.
enum class ClientWait {
  kNone,  ///< nothing from the client: the server works or waits for memory; no rule runs
  kIdle,  ///< between tensors: the client may go on whenever it likes (idle timeout only)
  kOwed,  ///< inside a tensor, or results to deliver: the client owes bytes (idle and rate)
};

/// Progress bookkeeping of one stream. Not thread-safe (the stream's lock guards it).
///
/// Progress is data bytes moved: tensor chunk bytes received and output chunk bytes written.
/// Empty chunks, headers and answers without data do not count, so neither a trickle of empty
/// messages nor a stream of empty tensors keeps a stream alive.
///  * Idle: no progress for idle_timeout_seconds of waiting on the client (kIdle or kOwed).
///  * Minimum rate (kOwed only): a token bucket in seconds. It starts full at min_rate_grace +
///    max_message_bytes / min_bytes_per_second, drains by the time spent in kOwed, and each byte
///    moved refills 1 / min_bytes_per_second (up to full). Empty: the stream ends. A client at the
///    minimum rate or faster never empties it, whatever its message sizes; one trickling below it
///    does within grace + one message's time at the rate, plus the sweeper's period.
///  * Duration: the stream is older than max_stream_seconds.
class ProgressMonitor {
 public:
  using Clock = std::chrono::steady_clock;

  ProgressMonitor(const ServerOptions& options, Clock::time_point start);

  /// Accounts the time since the last update in the wait state then in force, then switches to
  /// `wait`. Call on every event, with the state the event leaves the stream in.
  void Update(Clock::time_point now, ClientWait wait);
  /// Data bytes moved.
  void Progress(int64_t bytes);
  /// OK, or DEADLINE_EXCEEDED naming the rule that ends the stream (call after Update); `reason`
  /// receives the metric token ("idle_timeout", "min_rate", "max_stream_seconds").
  absl::Status Check(Clock::time_point now, const char** reason) const;

  /// How often a sweeper should call Check: a quarter of the shortest enabled time, within
  /// [10 ms, 1 s].
  static std::chrono::milliseconds SweepPeriod(const ServerOptions& options);

 private:
  double Full() const;  // the bucket's capacity in seconds

  const double idle_timeout_, min_rate_, grace_, max_stream_;
  const int64_t max_message_;
  const Clock::time_point start_;
  Clock::time_point last_;
  ClientWait wait_ = ClientWait::kNone;
  double idle_ = 0;    // seconds waited on the client since the last progress
  double bucket_ = 0;  // the rate rule's balance, seconds
  // Since the bucket was last full, for the message: time owed and bytes moved.
  double owed_seconds_ = 0;
  int64_t owed_bytes_ = 0;
};

}  // namespace rtnq::server
