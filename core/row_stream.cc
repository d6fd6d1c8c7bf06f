#include "core/row_stream.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {

using internal::RowScratch;
using internal::ThreadScratch;

bool RowStreamQuantizer::CanStream(const QuantConfig& config, const QuantizeOptions& options) {
  return config.group_dim == 1 && !config.enable_mse_search && !config.double_quant() &&
         !options.pass_nonfinite;
}

absl::StatusOr<std::unique_ptr<RowStreamQuantizer>> RowStreamQuantizer::Create(
    const TensorInput& header, const QuantConfig& config, const QuantizeOptions& options,
    const Engine& engine) {
  RTNQ_ASSIGN_OR_RETURN(const TensorPlan plan,
                        PlanTensor(header.name, header.dtype, header.shape, config, options));
  return FromPlan(header, plan, config, options, engine);
}

absl::StatusOr<std::unique_ptr<RowStreamQuantizer>> RowStreamQuantizer::FromPlan(
    const TensorInput& header, const TensorPlan& plan, const QuantConfig& config,
    const QuantizeOptions& options, const Engine& engine) {
  if (!plan.quantize) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tensor \"", header.name, "\" is passed through (", plan.skip_reason, "), not streamed"));
  }
  if (!CanStream(config, options)) {
    return absl::FailedPreconditionError(
        absl::StrCat("tensor \"", header.name,
                     "\": group_dim 0, MSE search, double quant and non-finite pass-through need "
                     "the whole tensor; use QuantizeTensor"));
  }
  const internal::RowPass pass =
      internal::RowPass::For(config, engine.kernels(), plan.cols, header.dtype, header.dtype);
  return std::unique_ptr<RowStreamQuantizer>(
      new RowStreamQuantizer(engine, header.name, pass, plan.rows, options));
}

RowStreamQuantizer::RowStreamQuantizer(const Engine& engine, std::string name,
                                       internal::RowPass pass, int64_t rows,
                                       const QuantizeOptions& options)
    : engine_(engine),
      name_(std::move(name)),
      pass_(pass),
      rows_(rows),
      options_(options),
      stats_(rows) {}

absl::Status RowStreamQuantizer::AddRows(absl::Span<const uint8_t> bytes, RowBlockOutput& out) {
  const auto start = std::chrono::steady_clock::now();
  const int64_t rb = row_bytes();
  if (static_cast<int64_t>(bytes.size()) % rb != 0) {
    return absl::InvalidArgumentError(absl::StrCat(TensorPrefix(name_), bytes.size(),
                                                   " bytes is not a whole number of rows of ", rb,
                                                   " bytes"));
  }
  const int64_t n = static_cast<int64_t>(bytes.size()) / rb;
  if (next_row_ + n > rows_) {
    return absl::InvalidArgumentError(absl::StrCat(TensorPrefix(name_), "rows ", next_row_, "..",
                                                   next_row_ + n - 1, " exceed its ", rows_,
                                                   " rows"));
  }
  const int64_t cols = pass_.cols, G = pass_.groups_per_row;
  const bool asym = pass_.params.mode == KernelMode::kAsym;
  out.first_row = next_row_;
  out.num_rows = n;
  out.fake.assign(options_.fake_quant ? n * cols * ElemSize(pass_.out_dtype) : 0, 0);
  out.codes.assign(options_.codes ? n * cols : 0, 0);
  out.scales.assign(n * G, 0.0f);
  out.zeros.assign(asym ? n * G : 0, 0);
  internal::FirstBad bad;
  const int64_t per_block = internal::RowsPerBlock(cols);
  RTNQ_RETURN_IF_ERROR(engine_.ParallelFor(
      (n + per_block - 1) / per_block,
      [&](int64_t b) {
        RowScratch& scratch = ThreadScratch(cols);
        for (int64_t i = b * per_block; i < std::min(n, (b + 1) * per_block); ++i) {
          const float* x = pass_.AsFloat(bytes.data() + i * rb, scratch);
          if (int64_t c = internal::RowPass::FirstNonFinite(x, cols); c >= 0) {
            bad.Record(i * cols + c);
            continue;
          }
          uint8_t* codes = options_.codes ? out.codes.data() + i * cols : scratch.codes.data();
          pass_.Quantize(x, codes, out.scales.data() + i * G,
                         asym ? out.zeros.data() + i * G : nullptr, scratch.deq.data());
          uint8_t* fake = options_.fake_quant
                              ? out.fake.data() + i * cols * ElemSize(pass_.out_dtype)
                              : nullptr;
          stats_[next_row_ + i] = pass_.Emit(x, scratch.deq.data(), fake, scratch);
        }
      },
      options_.cancel));
  if (bad.found()) {
    const int64_t at = bad.index();
    return absl::InvalidArgumentError(
        absl::StrCat(TensorPrefix(name_), "element [", next_row_ + at / cols, ", ", at % cols,
                     "] is not finite; NaN/Inf weights cannot be quantized"));
  }
  if (pass_.params.mode != KernelMode::kTable) {
    RTNQ_RETURN_IF_ERROR(internal::CheckScales(name_, out.scales.data(), n, G, next_row_));
  }
  if (!options_.codes) {
    out.scales.clear();
    out.zeros.clear();
  }
  next_row_ += n;
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return absl::OkStatus();
}

absl::StatusOr<TensorMetrics> RowStreamQuantizer::Finish() {
  if (next_row_ != rows_) {
    return absl::FailedPreconditionError(
        absl::StrCat(TensorPrefix(name_), next_row_, " of ", rows_, " rows received"));
  }
  TensorMetrics m = internal::MetricsFromRows(stats_, rows_ * pass_.cols,
                                              rows_ * pass_.groups_per_row, pass_.quantile);
  m.seconds = seconds_;
  return m;
}

}  // namespace rtnq
