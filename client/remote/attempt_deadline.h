// The per-tensor-attempt deadline of a session. A stream carries many tensors, so the gRPC
// deadline (fixed per call) cannot express it; a watchdog thread cancels the stream instead.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "grpcpp/grpcpp.h"

namespace rtnq::client {

/// Cancels an armed ClientContext when its attempt runs past the deadline. Thread-safe.
class AttemptDeadline {
 public:
  /// `seconds` <= 0 disables it (Arm does nothing, no thread is started).
  explicit AttemptDeadline(double seconds);
  ~AttemptDeadline();
  AttemptDeadline(const AttemptDeadline&) = delete;
  AttemptDeadline& operator=(const AttemptDeadline&) = delete;

  /// Starts the clock for an attempt on `context`, which must outlive the matching Disarm.
  void Arm(grpc::ClientContext* context);
  /// Stops the clock; returns true when the deadline had fired (the context was cancelled).
  bool Disarm();

 private:
  void Run();

  const std::chrono::duration<double> timeout_;
  std::mutex mu_;
  std::condition_variable cv_;
  grpc::ClientContext* context_ = nullptr;
  std::chrono::steady_clock::time_point deadline_;
  bool fired_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace rtnq::client
