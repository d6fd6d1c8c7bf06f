// The threads that run quantization steps off gRPC's threads. Each step calls into the core,
// whose Engine runs the row kernels inside its oneTBB arena; these threads only hand work over
// and carry results back to the streams.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rtnq::server {

/// Where a stream posts the work it must not do on gRPC's threads. Thread-safe.
class TaskRunner {
 public:
  virtual ~TaskRunner() = default;
  /// Queues `task`; it must not throw (steps catch at their boundary and return a Status).
  virtual void Post(std::function<void()> task) = 0;
};

/// A fixed set of threads running posted tasks in FIFO order. Thread-safe. The threads start
/// with Start(), so that what the owner sets up before it is visibly ordered before every task
/// (thread creation is the hand-off; gRPC's own, which the tasks arrive through, is not
/// visible to ThreadSanitizer). Tasks posted earlier wait for it.
class WorkPool final : public TaskRunner {
 public:
  explicit WorkPool(int threads);
  /// Starts the threads; call once.
  void Start();
  /// Runs the tasks already posted, then joins.
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Post(std::function<void()> task) override;

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  int thread_count_;
  std::vector<std::thread> threads_;
};

}  // namespace rtnq::server
