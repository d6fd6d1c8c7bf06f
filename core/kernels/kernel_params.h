// Per-tensor constants the group kernels need, derived once from a validated QuantConfig.
#pragma once

#include <cstdint>

#include "core/config/quant_config.h"

namespace rtnq {

/// A float-4 value table (nf4, fp4, fp4_e2m1) with its integer codes and bucket edges.
struct Float4Table {
  int size;             ///< 16 for nf4, 15 for the fp4 types
  float values[16];     ///< ascending
  int8_t codes[16];     ///< code of values[i]
  float midpoints[15];  ///< (values[i] + values[i+1]) / 2 in double, rounded to float32
  float max_value;      ///< max(values)
  int zero_index;       ///< index of the 0.0 entry (code 0): where 0/0 (an all-zero group) lands
  float value_by_nibble[16];  ///< dequantized value of each 4-bit code (code & 15)
};

/// The table for a float-4 dtype; nullptr for other dtypes.
const Float4Table* TableFor(QuantDtype dtype);

/// How a group is quantized.
enum class KernelMode : uint8_t { kSym, kSymFullRange, kAsym, kTable };

/// Constants for one tensor's group kernel.
struct KernelParams {
  KernelMode mode = KernelMode::kAsym;
  int bits = 4;
  float maxq = 15.0f;  ///< largest code (sym: 2^(b-1)-1, or 1 when b == 1; asym: 2^b-1)
  float minq = 0.0f;   ///< smallest code (sym: -2^(b-1), or 0 when b == 1; asym: 0)
  float full_range_divisor = 8.0f;  ///< 2^(b-1), the sym full-range scale divisor
  const Float4Table* table = nullptr;
};

/// Derives kernel constants from a validated config with dtype != fp32.
KernelParams MakeKernelParams(const QuantConfig& cfg);

/// Number of groups in a row of `cols` elements for an effective group size.
/// A group's zero point as stored: zp is integer-valued, or NaN/inf when the scale underflowed
/// (such groups are rejected afterwards). Those give 0x80000000, as x86's cvttss2si and the SIMD
/// twins' conversion do; spelled out because converting them with a cast is undefined.
inline int32_t ZeroPointToInt(float zp) {
  if (!(zp >= -2147483648.0f && zp < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(zp);
}

inline int64_t GroupsPerRow(int64_t cols, int64_t group_size) {
  return (cols + group_size - 1) / group_size;
}

/// The group size actually used: cols when group_size is -1 or larger than cols.
inline int64_t EffectiveGroupSize(int64_t group_size, int64_t cols) {
  return (group_size == -1 || group_size > cols) ? cols : group_size;
}

/// The group size a packed checkpoint (GPTQ, AWQ, compressed-tensors) records for a weight with
/// `in` input features: `in` for per-channel (-1), otherwise the configured size, never shrunk.
/// Loaders apply it as given and check in % group_size == 0, so unlike EffectiveGroupSize a size
/// larger than `in` stays what it is (and is refused by the layout's check).
inline int64_t LoaderGroupSize(int64_t group_size, int64_t in) {
  return group_size == -1 ? in : group_size;
}

/// The effective group size of a [rows, cols] weight quantized with `cfg`: along a row for
/// group_dim 1, down a column for group_dim 0.
inline int64_t EffectiveGroupSize(const QuantConfig& cfg, int64_t rows, int64_t cols) {
  const int64_t grouped = cfg.group_dim == 0 ? rows : cols;
  return EffectiveGroupSize(cfg.group_size, grouped);
}

/// Shape of the per-group scale (and zero point) grid of a [rows, cols] weight quantized with
/// `cfg`: one entry per group, groups along a row (group_dim 1) or down a column (group_dim 0).
struct ScaleGrid {
  int64_t rows;
  int64_t cols;
};
inline ScaleGrid ScaleGridOf(const QuantConfig& cfg, int64_t rows, int64_t cols) {
  const int64_t gs = EffectiveGroupSize(cfg, rows, cols);
  if (cfg.group_dim == 0) return {GroupsPerRow(rows, gs), cols};
  return {rows, GroupsPerRow(cols, gs)};
}

}  // namespace rtnq
