#include "core/layout/output_plan.h"

#include "absl/strings/str_cat.h"
#include "core/kernels/kernel_params.h"
#include "core/layout/awq.h"
#include "core/layout/compressed_tensors.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// INC's word matrix for a [rows, cols] code matrix (mirrors inc.cc's IncWordShape).
std::vector<int64_t> IncWords(int64_t rows, int64_t cols, int bits, int compression_dim) {
  const int64_t n = IncPackFactor(bits);
  if (compression_dim == 1) return {rows, CeilDiv(cols, n)};
  return {CeilDiv(rows, n), cols};
}

const char* LayoutLabel(OutputLayout l) {
  switch (l) {
    case OutputLayout::kCompressedTensors:
      return "compressed-tensors";
    case OutputLayout::kAwq:
      return "AWQ";
    default:
      return "GPTQ";
  }
}

absl::Status PlanError(std::string_view name, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(TensorPrefix(name), std::string(what)));
}

// Layouts store weight matrices: [shape[0], product(rest)].
absl::Status CheckWeightMatrix(std::string_view name, const std::vector<int64_t>& shape) {
  if (shape.size() >= 2) return absl::OkStatus();
  return PlanError(
      name, absl::StrCat(shape.size(), "-D tensors cannot be quantized as a weight matrix (shape ",
                         ShapeString(shape), ")"));
}

}  // namespace

std::string LayerName(std::string_view tensor_name) {
  constexpr std::string_view kSuffix = ".weight";
  if (tensor_name.size() > kSuffix.size() &&
      tensor_name.substr(tensor_name.size() - kSuffix.size()) == kSuffix) {
    tensor_name.remove_suffix(kSuffix.size());
  }
  return std::string(tensor_name);
}

absl::StatusOr<std::vector<TensorSpec>> PlanQuantizedOutputs(std::string_view name, ElemType dtype,
                                                             const std::vector<int64_t>& shape,
                                                             const QuantConfig& config,
                                                             const OutputLayoutOptions& options) {
  RTNQ_RETURN_IF_ERROR(CheckWeightMatrix(name, shape));
  if (!IsQuantizableFloat(dtype)) {
    return PlanError(name, absl::StrCat("dtype ", ElemTypeName(dtype),
                                        " cannot be quantized (F32, F16 or BF16 only)"));
  }
  if (absl::Status s = ValidateConfig(config); !s.ok())
    return PlanError(name, std::string(s.message()));
  return PlanLayoutOutputs(name, dtype, shape, config, options);
}

absl::StatusOr<std::vector<TensorSpec>> PlanLayoutOutputs(std::string_view name, ElemType dtype,
                                                          const std::vector<int64_t>& shape,
                                                          const QuantConfig& config,
                                                          const OutputLayoutOptions& options) {
  RTNQ_RETURN_IF_ERROR(CheckWeightMatrix(name, shape));
  const int64_t rows = shape[0];
  int64_t cols = 1;
  for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
  const std::string layer = LayerName(name);
  switch (options.layout) {
    case OutputLayout::kFake:
      return std::vector<TensorSpec>{{std::string(name), dtype, shape}};
    case OutputLayout::kInc: {
      const int cd = options.compression_dim;
      if (cd != 0 && cd != 1) {
        return PlanError(name, absl::StrCat("compression_dim must be 0 or 1, got ", cd));
      }
      // group_dim 0 quantizes the transpose: groups run down the columns.
      const auto [sr, sc] = ScaleGridOf(config, rows, cols);
      std::vector<TensorSpec> out;
      out.push_back({layer + ".qweight", ElemType::kI32, IncWords(rows, cols, config.bits, cd)});
      out.push_back({layer + ".scales", ElemType::kF32, {sr, sc}});
      if (IsIntAsym(config)) {
        out.push_back({layer + ".qzeros", ElemType::kI32, IncWords(sr, sc, config.bits, cd)});
      }
      return out;
    }
    case OutputLayout::kCompressedTensors:
    case OutputLayout::kAwq:
    case OutputLayout::kGptq: {
      if (shape.size() != 2) {
        return PlanError(
            name, absl::StrCat("the ", LayoutLabel(options.layout),
                               " layout needs a 2-D weight, got shape ", ShapeString(shape)));
      }
      if (options.layout == OutputLayout::kCompressedTensors) {
        return PlanCompressedTensors(layer, config, dtype, rows, cols);
      }
      if (options.layout == OutputLayout::kAwq) return PlanAwq(layer, config, rows, cols);
      RTNQ_RETURN_IF_ERROR(CheckGptqCompatible(name, config, rows, cols));
      const int64_t in = cols, out_f = rows, b = config.bits;
      const int64_t groups = in / LoaderGroupSize(config.group_size, in);
      return std::vector<TensorSpec>{
          {layer + ".qweight", ElemType::kI32, {in * b / 32, out_f}},
          {layer + ".qzeros", ElemType::kI32, {groups, out_f * b / 32}},
          {layer + ".scales", ElemType::kF16, {groups, out_f}},
          {layer + ".g_idx", ElemType::kI32, {in}},
      };
    }
  }
  return absl::InternalError("unknown output layout");
}

absl::StatusOr<std::vector<PackedTensor>> PackToLayout(const QuantizedTensor& q,
                                                       std::string_view name,
                                                       const OutputLayoutOptions& options,
                                                       const Engine& engine) {
  const std::string layer = LayerName(name);
  switch (options.layout) {
    case OutputLayout::kInc:
      return PackInc(q, layer, options.compression_dim, engine);
    case OutputLayout::kGptq:
      return PackGptq(q, layer, GptqPackOptions{options.gptq_format, {}, nullptr}, engine);
    case OutputLayout::kCompressedTensors:
      return PackCompressedTensors(q, layer, &engine);
    case OutputLayout::kAwq:
      return PackAwq(q, layer, &engine);
    case OutputLayout::kFake:
      break;
  }
  return absl::InternalError(absl::StrCat(TensorPrefix(name), "the fake layout is not packed"));
}

}  // namespace rtnq
