#include "core/engine.h"

#include <exception>
#include <thread>

#include "absl/strings/str_cat.h"
#include "core/happens_before.h"
#include "tbb/blocked_range.h"
#include "tbb/info.h"
#include "tbb/parallel_for.h"
#include "tbb/task_arena.h"
#include "tbb/task_group.h"

namespace rtnq {
namespace {

// Debian's oneTBB is not instrumented, so ThreadSanitizer cannot see that a parallel_for's bodies
// start after the caller's writes (fork) and end before it goes on (join): every byte a block
// reads looks raced. Each report, suppressed or not, costs a scan of all earlier racy addresses,
// which made a few megabytes of tensor take minutes. These marks tell TSan about the fork-join
// edges oneTBB guarantees; races between blocks stay visible.
class ForkJoinMarks {
 public:
  /// Marks one body's start and end (also when it returns early or throws).
  class Body {
   public:
    explicit Body(ForkJoinMarks& marks) : marks_(marks) { marks_.Started(); }
    ~Body() { marks_.Finished(); }
    Body(const Body&) = delete;
    Body& operator=(const Body&) = delete;

   private:
    ForkJoinMarks& marks_;
  };

  void Fork() { MarkHappensBefore(&fork_); }
  void Started() { MarkHappensAfter(&fork_); }
  void Finished() { MarkHappensBefore(&join_); }
  void Joined() { MarkHappensAfter(&join_); }

 private:
  char fork_ = 0;
  char join_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options) {
  if (options.threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("threads must be >= 0 (0 = all cores), got ", options.threads));
  }
  const KernelTable* kernels = &BestKernels();
  if (!options.kernels.empty()) {
    kernels = KernelsByName(options.kernels);
    if (kernels == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kernels \"", options.kernels,
          "\" is unknown or not supported by this CPU (use reference, avx2 or avx512)"));
    }
  }
  // More threads than the machine has only adds contention (and oneTBB caps its workers there).
  const int hardware = std::max(1, tbb::info::default_concurrency());
  const int threads = options.threads == 0 ? hardware : std::min(options.threads, hardware);
  return std::unique_ptr<Engine>(new Engine(threads, kernels));
}

Engine::Engine(int threads, const KernelTable* kernels)
    : threads_(threads), kernels_(kernels), arena_(std::make_unique<tbb::task_arena>(threads)) {}

Engine::~Engine() = default;

absl::Status Engine::ParallelFor(int64_t num_blocks, const std::function<void(int64_t)>& fn,
                                 const std::atomic<bool>* cancel) const {
  auto cancelled = [cancel] {
    return cancel != nullptr && cancel->load(std::memory_order_relaxed);
  };
  if (threads_ == 1 || num_blocks <= 1) {
    // The serial driver: same per-block work, no arena hop.
    try {
      for (int64_t b = 0; b < num_blocks; ++b) {
        if (cancelled()) return absl::CancelledError("quantization cancelled");
        fn(b);
      }
    } catch (const std::exception& e) {
      return absl::InternalError(absl::StrCat("quantization task failed: ", e.what()));
    }
    return absl::OkStatus();
  }
  tbb::task_group_context ctx;
  std::string error;
  ForkJoinMarks marks;
  marks.Fork();
  // execute() may hand the functor to an arena thread when every slot is taken.
  arena_->execute([&] {
    marks.Started();
    try {
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, num_blocks, 1),
          [&](const tbb::blocked_range<int64_t>& r) {
            const ForkJoinMarks::Body body(marks);
            for (int64_t b = r.begin(); b != r.end(); ++b) {
              if (cancelled()) {
                ctx.cancel_group_execution();
                return;
              }
              fn(b);
            }
          },
          tbb::simple_partitioner(), ctx);
    } catch (const std::exception& e) {
      error = e.what();
    }
    marks.Finished();
  });
  marks.Joined();
  if (!error.empty()) return absl::InternalError(absl::StrCat("quantization task failed: ", error));
  if (cancelled()) return absl::CancelledError("quantization cancelled");
  return absl::OkStatus();
}

}  // namespace rtnq
