// Quantizing one tensor: the boundary where shapes, dtypes and values are validated, and the
// driver that runs the row kernels over an Engine.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/kernels/kernel_params.h"

namespace rtnq {

/// A tensor as it arrives: raw little-endian row-major bytes.
struct TensorInput {
  std::string name;
  ElemType dtype = ElemType::kF32;
  std::vector<int64_t> shape;
  absl::Span<const uint8_t> data;
};

/// What to produce and how to treat special tensors.
struct QuantizeOptions {
  bool fake_quant = true;    ///< dequantized values in the input dtype
  bool codes = false;        ///< integer codes, scales and zero points
  bool quantize_1d = false;  ///< quantize 1-D tensors as [1, n] instead of passing them through
  /// Pass tensors containing NaN/Inf through unquantized instead of failing.
  bool pass_nonfinite = false;
  const std::atomic<bool>* cancel = nullptr;  ///< set to true to abandon the work
};

/// Per-tensor quality metrics (fake-quantized output against the input, both as float32).
struct TensorMetrics {
  int64_t elements = 0;
  int64_t groups = 0;
  double mse = 0;
  double max_abs_error = 0;
  double snr_db = 0;        ///< 10 log10(sum x^2 / sum err^2); +inf when the error is 0
  double clip_ratio = 1.0;  ///< the quantile used (the MSE search's choice when enabled)
  double seconds = 0;       ///< wall time spent quantizing
};

/// The result of quantizing (or passing through) one tensor.
struct QuantizedTensor {
  std::string name;
  ElemType dtype = ElemType::kF32;
  std::vector<int64_t> shape;
  bool quantized = false;
  std::string skip_reason;  ///< why it was passed through (when !quantized)
  QuantConfig config;       ///< as applied; config.quantile is the clip ratio used

  /// The 2-D view that was quantized: [shape[0], prod(rest)] (or [1, n] for a forced 1-D).
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t group_size = 0;  ///< effective group size (along cols, or along rows for group_dim 0)

  std::vector<uint8_t> fake;   ///< fake-quantized values in `dtype`, original shape
  std::vector<uint8_t> codes;  ///< [rows, cols] code bytes (two's complement when signed)
  std::vector<float> scales;   ///< [scale_rows(), scale_cols()] (double-quantized if enabled)
  std::vector<int32_t> zeros;  ///< same shape as scales; asym int only
  TensorMetrics metrics;

  /// Scale matrix shape: [rows, ceil(cols/gs)] for group_dim 1, [ceil(rows/gs), cols] for 0.
  int64_t scale_rows() const;
  int64_t scale_cols() const;
};

/// Quantizes one tensor with one (validated here) config. Errors name the tensor:
/// InvalidArgument for bad shapes, byte counts, dtypes, configs or non-finite values;
/// Cancelled when options.cancel is set. dtype fp32 and 1-D tensors come back unquantized.
absl::StatusOr<QuantizedTensor> QuantizeTensor(const TensorInput& input, const QuantConfig& config,
                                               const QuantizeOptions& options,
                                               const Engine& engine);

/// Reconstructs float32 values [rows, cols] from codes, scales and zero points (the inverse the
/// packers and `verify` rely on). Equals the fake-quantized values bit for bit (before any cast
/// back to a 16-bit dtype).
absl::StatusOr<std::vector<float>> DequantizeCodes(const QuantizedTensor& q, const Engine& engine);

/// Checks name, dtype, shape and byte count; returns the element count or InvalidArgument.
absl::StatusOr<int64_t> ValidateTensorInput(const TensorInput& input);

/// How a tensor will be treated, decided from its header and config alone.
struct TensorPlan {
  int64_t elements = 0;
  bool quantize = false;  ///< false: passed through unquantized, see skip_reason
  std::string skip_reason;
  int64_t rows = 0;  ///< the 2-D view when quantized
  int64_t cols = 0;
  int64_t group_size = 0;      ///< when quantized: EffectiveGroupSize(config, rows, cols)
  ScaleGrid scale_grid{0, 0};  ///< when quantized: ScaleGridOf(config, rows, cols)
};

/// Validates a tensor header (name, dtype, shape; not its bytes) and the config, and decides
/// whether it is quantized. Errors are InvalidArgument naming the tensor.
absl::StatusOr<TensorPlan> PlanTensor(const std::string& name, ElemType dtype,
                                      const std::vector<int64_t>& shape, const QuantConfig& config,
                                      const QuantizeOptions& options);

}  // namespace rtnq
