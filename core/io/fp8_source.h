// Which tensors of a checkpoint are FP8 sources and how each is dequantized: every F8_E4M3 /
// F8_E5M2 tensor is paired with its scale tensor (core/fp8.h), and the tensors that only an FP8
// runtime reads (the scales themselves, activation and KV-cache scales) are consumed rather than
// copied into a re-quantized checkpoint. Decided from the headers and config.json alone.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/fp8.h"
#include "core/io/safetensors_header.h"

namespace rtnq {

/// The block size config.json states for block-scaled FP8 weights: quantization_config
/// "weight_block_size" (DeepSeek, transformers' FineGrainedFP8), or the "block_structure" of a
/// compressed-tensors float scheme. nullopt when neither is present (or no quantization_config).
/// InvalidArgument naming the key when present but not two positive integers, or when
/// compressed-tensors schemes disagree.
absl::StatusOr<std::optional<std::array<int64_t, 2>>> Fp8BlockFromConfig(
    const nlohmann::ordered_json& config);

/// What happens to the FP8-related tensors of a checkpoint.
struct Fp8SourcePlan {
  /// FP8 weight name -> how its scale applies.
  std::map<std::string, Fp8ScaleLayout, std::less<>> weights;
  /// Tensors left out of the output -> why (scales of FP8 weights, activation/KV-cache scales).
  std::map<std::string, std::string, std::less<>> consumed;
  bool empty() const { return weights.empty(); }
};

/// Pairs every FP8 tensor of `tensors` with its scale: "<name>_scale_inv" (a multiplier despite
/// its name, DeepSeek) or "<name>_scale" (per tensor, per channel or blocks). When any FP8 weight
/// exists, activation and KV-cache scales ("*.input_scale", "*.input_scale_ub", "*.k_scale",
/// "*.v_scale", "*.q_scale", "*.output_scale") are consumed too: the re-quantized checkpoint no
/// longer runs FP8 kernels. InvalidArgument naming the tensor (and the scale names looked for) for
/// an FP8 tensor without a scale or with a scale of unknown layout (RecognizeFp8Scale).
absl::StatusOr<Fp8SourcePlan> PlanFp8Sources(const std::vector<TensorSpec>& tensors,
                                             std::optional<std::array<int64_t, 2>> block);

}  // namespace rtnq
