// Internal to core: the per-row work shared by whole-tensor quantization and row streaming.
// One RowPass describes a matrix being quantized row by row; every row is independent, so any
// partition of rows over threads gives the same bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/kernels/kernels.h"

namespace rtnq::internal {

/// Scratch rows owned by one thread (kernels allocate nothing).
struct RowScratch {
  std::vector<float> x;       ///< input row as float32 (when a conversion is needed)
  std::vector<float> deq;     ///< dequantized row
  std::vector<float> back;    ///< fake output read back as float32 (16-bit outputs)
  std::vector<uint8_t> codes; ///< codes when the caller does not keep them
  std::vector<uint16_t> half; ///< 16-bit fake row when the caller keeps no fake output
  void Reserve(int64_t cols);
};

/// The scratch of the calling thread, sized for `cols`.
RowScratch& ThreadScratch(int64_t cols);

/// Constants for quantizing the rows of one matrix.
struct RowPass {
  const KernelTable* kernels = nullptr;
  KernelParams params;
  float quantile = 1.0f;
  int64_t cols = 0;
  int64_t group_size = 0;
  int64_t groups_per_row = 0;
  ElemType in_dtype = ElemType::kF32;   ///< storage type of input rows
  ElemType out_dtype = ElemType::kF32;  ///< storage type of fake output rows

  /// Returns row `in` (cols elements of in_dtype) as float32: the input itself for F32, else
  /// converted into scratch.x.
  const float* AsFloat(const uint8_t* in, RowScratch& scratch) const;

  /// Index of the first NaN/Inf in a float32 row, or -1.
  static int64_t FirstNonFinite(const float* x, int64_t n);

  /// Quantizes one float32 row into codes (cols bytes), scales and zeros (groups_per_row each;
  /// zeros may be null) and the dequantized values into `deq`.
  void Quantize(const float* x, uint8_t* codes, float* scales, int32_t* zeros, float* deq) const;

  /// Stores a dequantized row as fake output in out_dtype (`fake` may be null: metrics only) and
  /// returns the error statistics of the values delivered against `x`.
  RowErrorStats Emit(const float* x, const float* deq, uint8_t* fake, RowScratch& scratch) const;
};

/// Sums per-row statistics in row order (deterministic for any thread count).
RowErrorStats SumStats(const std::vector<RowErrorStats>& rows);

}  // namespace rtnq::internal
