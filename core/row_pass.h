// Internal to core: the per-row work shared by whole-tensor quantization and row streaming.
// One RowPass describes a matrix being quantized row by row; every row is independent, so any
// partition of rows over threads gives the same bytes.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/dtype.h"
#include "core/kernels/kernels.h"
#include "core/quantize.h"

namespace rtnq::internal {

/// Scratch rows owned by one thread (kernels allocate nothing).
struct RowScratch {
  std::vector<float> x;        ///< input row as float32 (when a conversion is needed)
  std::vector<float> deq;      ///< dequantized row
  std::vector<float> back;     ///< fake output read back as float32 (16-bit outputs)
  std::vector<uint8_t> codes;  ///< codes when the caller does not keep them
  std::vector<uint16_t> half;  ///< 16-bit fake row when the caller keeps no fake output
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

  /// The pass for rows of `cols` elements of `in_dtype` quantized with `config` (a validated
  /// config with dtype != fp32) by `kernels`, fake output stored as `out_dtype`.
  static RowPass For(const QuantConfig& config, const KernelTable& kernels, int64_t cols,
                     ElemType in_dtype, ElemType out_dtype);

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

/// Rows per parallel block: fixed by the row width alone, so block boundaries (and with them the
/// order of every reduction) do not depend on the thread count.
inline int64_t RowsPerBlock(int64_t cols) {
  return cols >= (int64_t{1} << 16) ? 1 : (int64_t{1} << 16) / cols;
}

/// Lowest flat index of a non-finite element reported by any thread.
class FirstBad {
 public:
  void Record(int64_t index);
  int64_t index() const { return index_.load(); }
  bool found() const { return index() != kNone; }

 private:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();
  std::atomic<int64_t> index_{kNone};
};

/// A scale of 0 or Inf (weights near the float32 limits) would give NaN outputs: the reference
/// silently returns them, rtnq refuses with InvalidArgument naming the tensor, row and group.
/// `scales` holds `rows` rows of `groups` starting at tensor row `first_row`.
absl::Status CheckScales(const std::string& name, const float* scales, int64_t rows, int64_t groups,
                         int64_t first_row);

/// Tensor metrics from per-row statistics summed in row order (deterministic for any thread
/// count).
TensorMetrics MetricsFromRows(const std::vector<RowErrorStats>& rows, int64_t elements,
                              int64_t groups, float clip_ratio);

}  // namespace rtnq::internal
