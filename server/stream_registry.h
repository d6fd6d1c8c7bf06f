// The Quantize streams in progress: admission against max_streams, the progress sweep (idle
// timeout, minimum rate, longest duration), and waiting for streams to finish on shutdown.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace rtnq::server {

/// What the registry needs of a stream.
class StreamHandle {
 public:
  virtual ~StreamHandle() = default;
  /// Ends the stream if it makes too little progress (ProgressMonitor). Must not block: the
  /// sweep checks every stream from one thread.
  virtual void CheckProgress(std::chrono::steady_clock::time_point now) = 0;
};

/// Thread-safe set of active streams.
class StreamRegistry {
 public:
  /// Registers a stream unless `max_streams` are active; the id to Remove it with.
  std::optional<uint64_t> TryAdd(std::weak_ptr<StreamHandle> stream, int max_streams);
  void Remove(uint64_t id);
  int active() const;
  /// Calls CheckProgress on every live stream (outside the registry's lock).
  void CheckProgress(std::chrono::steady_clock::time_point now);
  /// Blocks until no stream is active or `deadline` passes; true when none is active.
  bool WaitUntilEmpty(std::chrono::steady_clock::time_point deadline);

 private:
  mutable std::mutex mu_;
  std::condition_variable empty_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::weak_ptr<StreamHandle>> streams_;
};

}  // namespace rtnq::server
