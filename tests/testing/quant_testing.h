// Configs and weights the core's layout tests quantize.
#pragma once

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "core/config/quant_config.h"
#include "core/dtype.h"

namespace rtnq::testing {

/// An int config (the rest as the contract's defaults).
inline QuantConfig IntConfig(int bits, Scheme scheme, int64_t group_size, int group_dim = 1) {
  QuantConfig c;
  c.dtype = QuantDtype::kInt;
  c.bits = bits;
  c.scheme = scheme;
  c.group_size = group_size;
  c.group_dim = group_dim;
  return c;
}

/// Normally distributed weights [rows, cols] (every `bump`-th one shifted by a fifth of a
/// standard deviation times three, so groups are not centred), as the bytes of `dtype` (F32,
/// F16 or BF16, rounded to nearest even).
inline std::vector<uint8_t> RandomWeights(int64_t rows, int64_t cols, ElemType dtype, uint32_t seed,
                                          float stddev, int bump) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<uint8_t> bytes(rows * cols * ElemSize(dtype));
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float v = dist(rng) + (i % bump == 0 ? stddev / 3 : 0.0f);
    if (dtype == ElemType::kF32) {
      std::memcpy(&bytes[i * 4], &v, 4);
    } else {
      const uint16_t h = dtype == ElemType::kF16 ? FloatToHalf(v) : FloatToBf16(v);
      std::memcpy(&bytes[i * 2], &h, 2);
    }
  }
  return bytes;
}

}  // namespace rtnq::testing
