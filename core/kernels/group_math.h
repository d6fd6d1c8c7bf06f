// The per-group scalar steps of the spec (scale, zero point, table lookup), shared by the
// reference twin and the SIMD kernels so that both compute them with the same float32 operations.
#pragma once

// Functions are `static inline`: each translation unit keeps its own copy, so a copy compiled
// with AVX-512 flags can never be the one the linker hands to the scalar twin.

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/kernels/kernel_params.h"

namespace rtnq {

/// Scale and zero point of one int group (zp is 0 for sym).
struct IntGroupScale {
  float scale;
  float zp;
};

/// Spec "Per-group math, dtype int" from the group's min and max, all in float32.
static inline IntGroupScale ComputeIntScale(float mn, float mx, const KernelParams& p,
                                            float quantile) {
  if (p.mode == KernelMode::kAsym) {
    float lo = std::min(mn, 0.0f) * quantile;
    float hi = std::max(mx, 0.0f) * quantile;
    if (lo == 0.0f && hi == 0.0f) {
      lo = -1.0f;
      hi = 1.0f;
    }
    const float scale = (hi - lo) / p.maxq;
    return {scale, std::nearbyint(-lo / scale)};
  }
  const float amx = std::fabs(mx);
  const float amn = std::fabs(mn);
  float amax = std::max(amx, amn) * quantile;
  if (amax == 0.0f) amax = 1.0f;
  if (p.mode == KernelMode::kSymFullRange) {
    const float scale = amax / p.full_range_divisor;
    // The dominant side must land on the extra negative level: flip only on strict dominance.
    return {amx > amn ? -scale : scale, 0.0f};
  }
  return {amax / p.maxq, 0.0f};
}

/// Scale of one float-4 group: max(|g|) * quantile / max(T).
static inline float ComputeTableScale(float absmax, const Float4Table& t, float quantile) {
  return absmax * quantile / t.max_value;
}

/// Table index for x = g / scale: the count of bucket edges strictly below x; NaN (0/0 in an
/// all-zero group) maps to the zero entry.
static inline int TableIndex(float x, const Float4Table& t) {
  if (std::isnan(x)) return t.zero_index;
  int i = 0;
  while (i < t.size - 1 && x > t.midpoints[i]) ++i;
  return i;
}

/// Stores a clamped integer code as a byte (two's complement for negative codes). NaN (only
/// from a scale that underflowed to 0, which callers reject) stores 0.
static inline uint8_t CodeByte(float q) {
  return std::isnan(q) ? 0 : static_cast<uint8_t>(static_cast<int>(q));
}

/// Reads a code byte back as the integer code of its mode.
static inline int CodeValue(uint8_t byte, KernelMode mode) {
  return mode == KernelMode::kAsym ? static_cast<int>(byte)
                                   : static_cast<int>(static_cast<int8_t>(byte));
}

}  // namespace rtnq
