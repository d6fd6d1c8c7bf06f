// Quantizing a tensor while its rows are still arriving (the service receives tensors in
// chunks): no whole tensor is held, and each block of rows yields its outputs at once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/engine.h"
#include "core/quantize.h"
#include "core/row_pass.h"

namespace rtnq {

/// The outputs of one block of rows, in the tensor's layout.
struct RowBlockOutput {
  int64_t first_row = 0;
  int64_t num_rows = 0;
  std::vector<uint8_t> fake;   ///< num_rows * cols values in the input dtype
  std::vector<uint8_t> codes;  ///< num_rows * cols code bytes (if options.codes)
  std::vector<float> scales;   ///< num_rows * groups_per_row (if options.codes)
  std::vector<int32_t> zeros;  ///< asym only (if options.codes)
};

/// Quantizes the rows of one tensor in arrival order. Possible only for group_dim 1 without MSE
/// search, double quantization or non-finite pass-through (each needs the whole tensor first);
/// results are byte-identical to QuantizeTensor's.
class RowStreamQuantizer {
 public:
  /// True when `config` and `options` allow row streaming.
  static bool CanStream(const QuantConfig& config, const QuantizeOptions& options);

  /// Validates the header (data is ignored) and the config. FailedPrecondition when the tensor is
  /// passed through or the config cannot stream (use QuantizeTensor then).
  static absl::StatusOr<std::unique_ptr<RowStreamQuantizer>> Create(const TensorInput& header,
                                                                    const QuantConfig& config,
                                                                    const QuantizeOptions& options,
                                                                    const Engine& engine);

  /// Create for a header PlanTensor has already planned (plan.quantize) with `config`.
  static absl::StatusOr<std::unique_ptr<RowStreamQuantizer>> FromPlan(
      const TensorInput& header, const TensorPlan& plan, const QuantConfig& config,
      const QuantizeOptions& options, const Engine& engine);

  int64_t rows() const { return rows_; }
  int64_t row_bytes() const { return pass_.cols * ElemSize(pass_.in_dtype); }
  int64_t next_row() const { return next_row_; }
  int64_t groups_per_row() const { return pass_.groups_per_row; }

  /// Quantizes the next whole rows (`bytes` is a multiple of row_bytes()). InvalidArgument for a
  /// partial row, rows past the end, or NaN/Inf (naming the element).
  absl::Status AddRows(absl::Span<const uint8_t> bytes, RowBlockOutput& out);

  /// The tensor's metrics once every row was added; FailedPrecondition otherwise.
  absl::StatusOr<TensorMetrics> Finish();

 private:
  RowStreamQuantizer(const Engine& engine, std::string name, internal::RowPass pass, int64_t rows,
                     const QuantizeOptions& options);

  const Engine& engine_;
  std::string name_;
  internal::RowPass pass_;
  int64_t rows_;
  QuantizeOptions options_;
  int64_t next_row_ = 0;
  std::vector<RowErrorStats> stats_;
  double seconds_ = 0;
};

}  // namespace rtnq
