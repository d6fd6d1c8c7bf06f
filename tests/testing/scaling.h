// Loose scaling checks for "linear, not quadratic" (issue 13): the work on an input N times larger
// must grow far less than N^2 times. Measures the thread's CPU time (a loaded machine stretches
// wall time of long runs far more than of short ones), best of a few runs; the bound sits between
// linear and quadratic, never near a tight timing.
#pragma once

#include <time.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "gtest/gtest.h"

namespace rtnq::testing {

/// CPU seconds the calling thread has used.
inline double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

/// The fastest of `runs` calls of `f`, in CPU seconds of this thread.
inline double BestSeconds(const std::function<void()>& f, int runs = 3) {
  double best = 1e300;
  for (int i = 0; i < runs; ++i) {
    const double start = ThreadCpuSeconds();
    f();
    best = std::min(best, ThreadCpuSeconds() - start);
  }
  return best;
}

/// Expects `large` (an input `factor` times the size of `small`'s) to take less than
/// factor^1.75 times as long: linear or n log n passes even with cache effects, quadratic
/// (factor^2) fails. Noise on a shared machine only inflates a ratio, so the check retries up to
/// three times and passes on the first ratio under the bound; a real quadratic fails them all.
inline void ExpectSubquadratic(const std::function<void()>& small,
                               const std::function<void()>& large, double factor) {
  const double bound = std::pow(factor, 1.75);
  double ratio = 0, t_small = 0, t_large = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    t_small = std::max(BestSeconds(small), 1e-4);  // clock granularity
    t_large = BestSeconds(large);
    ratio = t_large / t_small;
    if (ratio < bound) return;
  }
  ADD_FAILURE() << "a " << factor << "x input took " << ratio << "x as long (bound " << bound
                << "): " << t_small << " s vs " << t_large << " s";
}

}  // namespace rtnq::testing
