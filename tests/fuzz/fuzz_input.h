// Helpers shared by the fuzz targets: splitting one fuzzer input into parts, and a check that
// stays on in release builds (assert would vanish under NDEBUG).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace rtnq::fuzz {

/// Aborts with the failed condition: the fuzzer records the input as a crash.
#define RTNQ_FUZZ_CHECK(cond)                                                                \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

/// The input as text.
inline std::string_view AsText(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

/// Splits at NUL bytes: seeds keep each part readable, and the mutator can move the boundaries.
inline std::vector<std::string_view> SplitAtNul(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '\0') {
      parts.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  return parts;
}

}  // namespace rtnq::fuzz
