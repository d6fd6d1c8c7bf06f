#include "core/layout/awq_config.h"

#include "absl/strings/str_cat.h"
#include "core/layout/awq.h"
#include "core/status_macros.h"

namespace rtnq {

absl::StatusOr<nlohmann::ordered_json> AwqQuantizationConfig(
    const std::vector<QuantizedLayer>& layers, const std::vector<std::string>& unquantized) {
  if (layers.empty())
    return absl::InvalidArgumentError("AWQ quantization_config: no layer is quantized");
  RTNQ_RETURN_IF_ERROR(CheckLayersListedOnce(LayerNames(layers), unquantized));
  const QuantizedLayer& first = layers.front();
  for (const QuantizedLayer& l : layers) {
    const int64_t in = l.config.group_size > 0 ? l.config.group_size : 1;
    RTNQ_RETURN_IF_ERROR(CheckAwqCompatible(l.name, l.config, 8, in));
    if (l.config.group_size != first.config.group_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", l.name, " has group_size ", l.config.group_size, " but layer ", first.name,
          " has ", first.config.group_size,
          ": an AWQ checkpoint has one group size for every layer; use the compressed-tensors "
          "or gptq format for per-layer group sizes"));
    }
    for (const std::string& u : unquantized) {
      if (l.name.find(u) != std::string::npos) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", u, " is left unquantized but its name is part of quantized layer ", l.name,
            ": AWQ loaders skip every module whose name contains a modules_to_not_convert "
            "entry, so they would skip ",
            l.name, " too; quantize ", u, " as well or use the compressed-tensors format"));
      }
    }
  }
  nlohmann::ordered_json j;
  j["quant_method"] = "awq";
  j["zero_point"] = true;
  j["group_size"] = first.config.group_size;
  j["bits"] = 4;
  j["version"] = "gemm";
  j["modules_to_not_convert"] =
      unquantized.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(unquantized);
  return j;
}

}  // namespace rtnq
