// What a quantized tensor becomes in the output checkpoint, known from its header and config
// alone: the output tensors' names, dtypes and shapes, so a writer can lay out the whole file
// before any data is quantized.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/pack.h"
#include "core/quant_config.h"
#include "core/safetensors_header.h"

namespace rtnq {

/// How quantized weights are stored: fake-quantized values in the input dtype, INC's packed
/// layout (PackInc) or the GPTQ layout (PackGptq).
enum class OutputLayout : uint8_t { kFake, kInc, kGptq };

/// The layout and its checkpoint-wide options.
struct OutputLayoutOptions {
  OutputLayout layout = OutputLayout::kFake;
  int compression_dim = 1;                   ///< kInc only
  GptqFormat gptq_format = GptqFormat::kV1;  ///< kGptq only (does not change shapes)
};

/// "model.layers.0.mlp.up_proj.weight" -> "model.layers.0.mlp.up_proj": the prefix of packed
/// tensors and the module name GPTQ configs use. Names not ending in ".weight" are kept whole.
std::string LayerName(std::string_view tensor_name);

/// The tensors quantizing `name` (dtype, shape) with `config` produces, in the order PackInc /
/// PackGptq produce them (fake: the tensor itself). The 2-D view is [shape[0], product(rest)].
/// Without a bias (GPTQ biases are separate tensors for the planner). InvalidArgument naming the
/// tensor for fewer than 2 dimensions, a non-float dtype, an invalid config, compression_dim not
/// 0/1, or (GPTQ) a config or shape CheckGptqCompatible refuses.
absl::StatusOr<std::vector<TensorSpec>> PlanQuantizedOutputs(std::string_view name, ElemType dtype,
                                                             const std::vector<int64_t>& shape,
                                                             const QuantConfig& config,
                                                             const OutputLayoutOptions& options);

}  // namespace rtnq
