// config.json["quantization_config"] of an AWQ GEMM checkpoint, as AutoAWQ's
// AwqConfig.to_transformers_dict writes it and vLLM, transformers and GPTQModel read it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layout/quantized_layer.h"

namespace rtnq {

/// {"quant_method": "awq", "zero_point": true, "group_size": G, "bits": 4, "version": "gemm",
/// "modules_to_not_convert": [`unquantized`] or null}. AWQ has one bits/group size for the whole
/// model, so every layer must share one config; loaders skip a module when any
/// modules_to_not_convert entry is a substring of its name, so no unquantized name may be a
/// substring of a quantized one. InvalidArgument naming the layers otherwise, when no layer is
/// quantized, a layer is listed twice, or a config is not 4-bit asym int (CheckAwqCompatible).
absl::StatusOr<nlohmann::ordered_json> AwqQuantizationConfig(
    const std::vector<QuantizedLayer>& layers, const std::vector<std::string>& unquantized);

}  // namespace rtnq
