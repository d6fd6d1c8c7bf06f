// Deadlines of tests that run a real server: sanitizer builds run 5-10x slower, so the test
// script sets RTNQ_TEST_TIME_SCALE for them (default 1) and tests multiply their waits by it.
#pragma once

#include <chrono>
#include <cstdlib>

namespace rtnq::testing {

/// RTNQ_TEST_TIME_SCALE, or 1 when unset or not a positive number.
inline double TestTimeScale() {
  const char* s = std::getenv("RTNQ_TEST_TIME_SCALE");
  const double v = s != nullptr ? std::atof(s) : 0;
  return v > 0 ? v : 1;
}

/// A gRPC deadline `seconds` (scaled) from now.
inline std::chrono::system_clock::time_point TestDeadline(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(
             std::chrono::duration<double>(seconds * TestTimeScale()));
}

}  // namespace rtnq::testing
