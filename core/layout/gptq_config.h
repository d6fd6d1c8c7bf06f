// The `quantization_config` object of a GPTQ checkpoint, written both into
// config.json["quantization_config"] and as quantize_config.json (same content).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layout/gptq.h"

namespace rtnq {

/// How one Linear layer was stored in the GPTQ layout.
struct GptqLayerQuant {
  std::string name;  ///< module name, e.g. "model.layers.0.mlp.down_proj"
  int bits = 4;
  int64_t group_size = 128;  ///< as configured; -1 for one group per row
  bool sym = true;
  bool desc_act = false;  ///< a gptq_perm was applied
  bool operator==(const GptqLayerQuant&) const = default;
};

/// Everything the config object states: the global values, the checkpoint-wide zero-point
/// format, and the layers that deviate.
struct GptqCheckpointConfig {
  int bits = 4;
  int64_t group_size = 128;
  bool sym = true;
  bool desc_act = false;
  GptqFormat format = GptqFormat::kV1;
  double damp_percent = 0.01;  ///< not used by RTN, but loaders reject 0
  bool true_sequential = true;
  std::vector<GptqLayerQuant> layers;       ///< every quantized Linear layer
  std::vector<std::string> skipped_layers;  ///< Linear layers left unquantized
  /// meta.quantizer's entry, "name:version": the producer, named honestly (GPTQModel reads it).
  std::string producer = "rtnq";
};

/// Builds a GptqCheckpointConfig whose global values are the most common (bits, group_size,
/// sym, desc_act) among `layers` (ties: the first seen), so that overrides are few. With no
/// layers the defaults stay.
GptqCheckpointConfig GptqConfigFromLayers(std::vector<GptqLayerQuant> layers,
                                          std::vector<std::string> skipped_layers,
                                          GptqFormat format);

/// The quantization_config object, every key explicit, in this order: quant_method "gptq", bits,
/// group_size, sym, desc_act, checkpoint_format and format (the same value: vLLM, AutoGPTQ and
/// transformers read the first, optimum and GPTQModel the second), pack_dtype "int32",
/// damp_percent, true_sequential, lm_head (true when a layer named "lm_head" or "*.lm_head" is
/// quantized: vLLM reads it), meta {"quantizer": [producer]}, then only when needed:
///  - "dynamic" (GPTQModel, vLLM): "+:<pattern>" -> {bits, group_size, sym, desc_act} for each
///    layer differing from the global values, and "-:<pattern>" -> {} for each skipped layer.
///    Loaders take the first pattern that re.match()es the module name, and name modules
///    differently: GPTQModel by the checkpoint's names, vLLM by its fused modules (q/k/v as
///    "qkv_proj", gate/up as "gate_up_proj", one MoE layer's experts as "...experts"). So the
///    parts of a fused module that share one config get one pattern matching the parts and the
///    fused name, e.g. "^model\.layers\.0\.self_attn\.(q_proj|k_proj|v_proj|qkv_proj)$" and
///    "^model\.layers\.1\.mlp\.experts(\..+)?$"; parts that differ (which vLLM cannot load,
///    see core/layout/loader_rules.h) get one exact "^<escaped name>$" each.
///  - "modules_in_block_to_quantize" (HF optimum) when layers inside repeated blocks (a name with
///    a numeric component, e.g. "model.layers.3.") are skipped: [[the quantized names relative
///    to their block, first-seen order]]. optimum applies that list to every block, so a name
///    quantized in one block and skipped in another cannot be expressed there: InvalidArgument
///    naming it rather than a checkpoint HF would load with random weights.
/// InvalidArgument also for bits other than 2/3/4/8, group_size 0 or < -1, damp_percent not in
/// (0, 1), or a layer listed twice.
absl::StatusOr<nlohmann::ordered_json> GptqQuantizationConfig(const GptqCheckpointConfig& cfg);

}  // namespace rtnq
