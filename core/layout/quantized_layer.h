// A quantized Linear layer as checkpoint-level records (config.json's quantization_config) and
// loader rules see it: its module name, the config it was quantized with and its weight shape.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "core/config/quant_config.h"

namespace rtnq {

struct QuantizedLayer {
  std::string name;  ///< module name, e.g. "model.layers.0.self_attn.q_proj"
  QuantConfig config;
  int64_t out_features = 0;  ///< 0 when unknown
  int64_t in_features = 0;
  bool operator==(const QuantizedLayer&) const = default;
};

/// The module names of `layers`, in order.
std::vector<std::string> LayerNames(const std::vector<QuantizedLayer>& layers);

/// InvalidArgument naming the first module that appears twice among `quantized` and
/// `unquantized` (a record must say one thing per module).
absl::Status CheckLayersListedOnce(const std::vector<std::string>& quantized,
                                   const std::vector<std::string>& unquantized);

}  // namespace rtnq
