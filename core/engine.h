// The execution context every quantization runs in: a bounded oneTBB arena and a kernel table.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/kernels/kernels.h"
#include "tbb/task_arena.h"

namespace rtnq {

/// Options of an Engine; tests and main.cc files fill it directly.
struct EngineOptions {
  int threads = 0;  ///< threads in the arena; 0 = all hardware threads (more are capped to that)
  std::string kernels = "";  ///< "" = best for this CPU; or "reference", "avx2", "avx512"
};

/// Owns the task arena that bounds quantization threads, and the chosen kernel table.
/// Thread-safe: many callers may run work in one engine at once.
class Engine {
 public:
  /// InvalidArgument for a negative thread count or an unknown/unsupported kernel name.
  static absl::StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options);
  ~Engine();

  const KernelTable& kernels() const { return *kernels_; }
  int threads() const { return threads_; }

  /// Runs fn(block) for block in [0, num_blocks) inside the arena, in parallel when the engine has
  /// more than one thread and serially otherwise; the per-block work must not depend on which.
  /// Returns Cancelled if `cancel` becomes true (remaining blocks are skipped), and Internal if
  /// fn throws (the exception is caught at the task boundary).
  absl::Status ParallelFor(int64_t num_blocks, const std::function<void(int64_t)>& fn,
                           const std::atomic<bool>* cancel = nullptr) const;

 private:
  Engine(int threads, const KernelTable* kernels);
  int threads_;
  const KernelTable* kernels_;
  std::unique_ptr<tbb::task_arena> arena_;
};

}  // namespace rtnq
