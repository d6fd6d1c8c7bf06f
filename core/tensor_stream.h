// One tensor whose bytes arrive in pieces of any size (a Quantize stream's chunks): how it is
// processed, what that holds in memory, and its outputs in the form asked for. Planned from the
// header alone, so a caller can reserve memory or refuse the tensor before reading its data. The
// caller keeps the transport (messages, checksums, accounting): server/tensor_job.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/expert_layout.h"
#include "core/io/safetensors_header.h"
#include "core/layout/output_plan.h"
#include "core/layout/packed_tensor.h"
#include "core/quantize.h"
#include "core/row_stream.h"

namespace rtnq {

/// What a quantized tensor's outputs are: its fake-quantized values, its raw codes
/// (`<name>.codes`, `.scales` and, for int asym, `.zeros`), or a packed checkpoint layout.
enum class StreamForm : uint8_t { kFake, kCodes, kPacked };

/// The outputs asked for.
struct StreamOutputs {
  StreamForm form = StreamForm::kFake;
  OutputLayoutOptions layout;  ///< kPacked: the layout (not kFake)
  bool metrics_only = false;   ///< quality metrics only: no output tensors
};

/// The QuantizeOptions that produce what `outputs` asks for: fake values for kFake, codes for
/// the others, nothing beyond metrics when metrics_only.
QuantizeOptions OptionsFor(const StreamOutputs& outputs, QuantizeOptions options);

/// How a tensor is processed as its bytes arrive.
enum class StreamMode : uint8_t {
  kPassThrough,  ///< not quantized (1-D, fp32 config, ...): the output is the input, as it comes
  kRows,         ///< quantized a block of whole rows at a time: no whole tensor is held
  kWhole,        ///< needs the whole tensor first (group_dim 0, MSE search, double quant, ...)
};

/// A tensor's plan, from its header and config. Byte figures count data only.
struct TensorStreamPlan {
  std::string name;
  ElemType dtype = ElemType::kF32;
  std::vector<int64_t> shape;
  QuantConfig config;
  QuantizeOptions options;  ///< OptionsFor(outputs, ...)
  StreamOutputs outputs;
  TensorPlan tensor;  ///< validated header and config; skip_reason for kPassThrough
  StreamMode mode = StreamMode::kPassThrough;
  int64_t input_bytes = 0;  ///< the tensor's data bytes
  /// Input bytes one step must complete: a row (kRows), the tensor (kWhole), 1 (kPassThrough).
  int64_t step_bytes = 1;
  /// All the tensor's output bytes (a bound where the layout cannot say; 0 for metrics only).
  int64_t output_bytes = 0;
  /// kRows: output bytes of one row as it is quantized (0 for a packed form: nothing goes out
  /// before the end).
  int64_t row_output_bytes = 0;
  /// kRows with a packed form: what is held from the first row to the end - the codes, scales
  /// and zero points kept for packing plus the packed outputs built from them.
  int64_t kept_bytes = 0;
  std::vector<ExpertSlice> experts;  ///< stacked MoE experts (kWhole): each expert's weight
};

/// Plans `name` (dtype, shape) under `config`: validates the header and config once (PlanTensor),
/// checks what the packed layout refuses (bits, scheme, 2-D, group sizes its loaders take) before
/// any data is read, and picks the mode. A quantized 3-D tensor named as stacked MoE experts
/// (StackedExpertsOf) is split per `experts` (an error without one) and processed whole, each
/// expert's weight checked and counted as a tensor of its own. InvalidArgument naming the tensor.
absl::StatusOr<TensorStreamPlan> PlanTensorStream(
    const std::string& name, ElemType dtype, const std::vector<int64_t>& shape,
    const QuantConfig& config, const QuantizeOptions& options, const StreamOutputs& outputs,
    const std::optional<ExpertLayout>& experts = std::nullopt);

/// The outputs of a row-streamed or passed-through tensor in an unpacked form (kFake, kCodes),
/// known from the plan: a packed form's are known after packing (TensorStream::Finish).
std::vector<TensorSpec> StreamedOutputSpecs(const TensorStreamPlan& plan);

/// The output tensors of a whole quantized tensor `q` in `outputs`' form, taking its buffers
/// (none for metrics only).
absl::StatusOr<std::vector<PackedTensor>> LayOutQuantized(QuantizedTensor& q,
                                                          const StreamOutputs& outputs,
                                                          const Engine& engine);

/// A kRows tensor being quantized: bytes in any pieces, rows quantized where they lie and only a
/// row split across pieces copied (at most one row is held). Unpacked forms hand each block of
/// rows' outputs out at once; a packed form keeps the codes and packs them at Finish.
class TensorStream {
 public:
  /// FailedPrecondition unless plan.mode is kRows.
  static absl::StatusOr<std::unique_ptr<TensorStream>> Start(const TensorStreamPlan& plan,
                                                             const Engine& engine);

  /// Called with each block of whole rows' outputs (unpacked forms); the outputs may be taken.
  using RowSink = std::function<void(RowBlockOutput&)>;

  /// Consumes the next `bytes` (in order, any size). InvalidArgument for bytes past the end or
  /// NaN/Inf (naming the element).
  absl::Status Add(absl::Span<const uint8_t> bytes, const RowSink& sink);

  /// A row split across pieces, waiting for the rest of its bytes.
  int64_t carried_bytes() const { return static_cast<int64_t>(carry_.size()); }

  /// What a finished tensor yields: its metrics and, for a packed form, its outputs.
  struct Result {
    TensorMetrics metrics;
    std::vector<PackedTensor> packed;
  };
  /// After the last byte; FailedPrecondition if bytes are missing.
  absl::StatusOr<Result> Finish();

 private:
  TensorStream(TensorStreamPlan plan, const Engine& engine,
               std::unique_ptr<RowStreamQuantizer> rows);
  absl::Status AddRows(absl::Span<const uint8_t> rows, const RowSink& sink);

  const TensorStreamPlan plan_;
  const Engine& engine_;
  std::unique_ptr<RowStreamQuantizer> rows_;
  std::vector<uint8_t> carry_;
  QuantizedTensor kept_;  // a packed form's codes, scales and zero points until the end
};

}  // namespace rtnq
