// config.json["quantization_config"] of a compressed-tensors pack-quantized checkpoint, the record
// vLLM, SGLang and transformers (through the compressed-tensors library) read to load it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layout/quantized_layer.h"

namespace rtnq {

/// The quantization_config object (keys as compressed-tensors' QuantizationConfig and
/// ModelCompressor.update_config write them): quant_method "compressed-tensors", format
/// "pack-quantized", quantization_status "compressed", kv_cache_scheme and
/// global_compression_ratio null, sparsity_config and transform_config {}, and
///  - config_groups: "group_0", "group_1", ... one per distinct (bits, sym, group size) in
///    first-seen order, each {targets: the exact module names, weights: {num_bits, type "int",
///    symmetric, group_size (null per channel), strategy "group" or "channel", block_structure
///    null, dynamic false, actorder null, observer null, observer_kwargs {}}, input_activations
///    and output_activations null}. Exact names, never a class like "Linear": vLLM would match a
///    class before the exact names of a fused layer's shards.
///  - ignore: `unquantized`, the Linear modules left in float (vLLM needs every Linear layer
///    either targeted or ignored).
/// Omits "version" (it names the compressed-tensors release that wrote a file) and the
/// scale_dtype/zp_dtype weight keys (compressed-tensors 0.11-0.12 refuse unknown keys).
/// InvalidArgument when no layer is quantized, a layer is listed twice, or a config is not
/// one the format stores (CheckCompressedTensorsCompatible's rules, shapes aside).
absl::StatusOr<nlohmann::ordered_json> CompressedTensorsQuantizationConfig(
    const std::vector<QuantizedLayer>& layers, const std::vector<std::string>& unquantized);

}  // namespace rtnq
