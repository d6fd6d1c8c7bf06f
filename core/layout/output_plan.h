// What a quantized tensor becomes in the output checkpoint, known from its header and config
// alone: the output tensors' names, dtypes and shapes, so a writer can lay out the whole file
// before any data is quantized.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/io/safetensors_header.h"
#include "core/layout/gptq.h"
#include "core/layout/inc.h"
#include "core/layout/output_layout.h"
#include "core/quantize.h"

namespace rtnq {

/// The layout and its checkpoint-wide options.
struct OutputLayoutOptions {
  OutputLayout layout = OutputLayout::kFake;
  int compression_dim = 1;                   ///< kInc only
  GptqFormat gptq_format = GptqFormat::kV1;  ///< kGptq only (does not change shapes)
};

/// "model.layers.0.mlp.up_proj.weight" -> "model.layers.0.mlp.up_proj": the prefix of packed
/// tensors and the module name GPTQ configs use. Names not ending in ".weight" are kept whole.
std::string LayerName(std::string_view tensor_name);

/// The tensors quantizing `name` (dtype, shape) with `config` produces, in the order
/// PackToLayout produces them (fake: the tensor itself). The 2-D view is [shape[0],
/// product(rest)]. Without a bias (GPTQ and AWQ biases are separate tensors for the planner).
/// InvalidArgument naming the tensor for fewer than 2 dimensions, a non-float dtype, an invalid
/// config, compression_dim not 0/1, a layout that stores 2-D weights only (GPTQ,
/// compressed-tensors, AWQ) given more dimensions, or a config or shape the layout's check
/// (CheckGptqCompatible, CheckCompressedTensorsCompatible, CheckAwqCompatible) refuses.
absl::StatusOr<std::vector<TensorSpec>> PlanQuantizedOutputs(std::string_view name, ElemType dtype,
                                                             const std::vector<int64_t>& shape,
                                                             const QuantConfig& config,
                                                             const OutputLayoutOptions& options);

/// PlanQuantizedOutputs for a header and config PlanTensor has already validated and planned
/// as quantized (2 or more dimensions, a float dtype, a valid config): the layout's own checks
/// only.
absl::StatusOr<std::vector<TensorSpec>> PlanLayoutOutputs(std::string_view name, ElemType dtype,
                                                          const std::vector<int64_t>& shape,
                                                          const QuantConfig& config,
                                                          const OutputLayoutOptions& options);

/// The packed tensors of `q` (quantized from the tensor `name`) in `options.layout`, which must
/// not be kFake: PackInc, PackGptq, PackCompressedTensors or PackAwq run in `engine`'s arena.
/// Same tensors, in the same order, as PlanQuantizedOutputs plans. The packers' errors.
absl::StatusOr<std::vector<PackedTensor>> PackToLayout(const QuantizedTensor& q,
                                                       std::string_view name,
                                                       const OutputLayoutOptions& options,
                                                       const Engine& engine);

}  // namespace rtnq
