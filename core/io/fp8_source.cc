#include "core/io/fp8_source.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

// Scales an FP8 runtime reads for activations and the KV cache; meaningless once the weights
// are re-quantized (the checkpoint's FP8 quantization_config is replaced).
constexpr const char* kRuntimeScaleSuffixes[] = {
    ".input_scale", ".input_scale_ub", ".k_scale", ".v_scale", ".q_scale", ".output_scale"};

using Block = std::optional<std::array<int64_t, 2>>;

absl::StatusOr<Block> BlockOf(const nlohmann::ordered_json& v, std::string_view key) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_array() || v.size() != 2 || !v[0].is_number_integer() || !v[1].is_number_integer() ||
      v[0].get<int64_t>() <= 0 || v[1].get<int64_t>() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("config.json quantization_config ", std::string(key),
                     " must be two positive integers, got ", v.dump()));
  }
  return std::array<int64_t, 2>{v[0].get<int64_t>(), v[1].get<int64_t>()};
}

}  // namespace

absl::StatusOr<std::optional<std::array<int64_t, 2>>> Fp8BlockFromConfig(
    const nlohmann::ordered_json& config) {
  if (!config.is_object() || !config.contains("quantization_config")) return std::nullopt;
  const nlohmann::ordered_json& q = config["quantization_config"];
  if (!q.is_object()) return std::nullopt;
  if (q.contains("weight_block_size")) return BlockOf(q["weight_block_size"], "weight_block_size");
  std::optional<std::array<int64_t, 2>> found;
  if (q.contains("config_groups") && q["config_groups"].is_object()) {
    for (const auto& [group, scheme] : q["config_groups"].items()) {
      if (!scheme.is_object() || !scheme.contains("weights") || !scheme["weights"].is_object() ||
          !scheme["weights"].contains("block_structure")) {
        continue;
      }
      const std::string key = absl::StrCat("config_groups.", group, ".weights.block_structure");
      RTNQ_ASSIGN_OR_RETURN(Block b, BlockOf(scheme["weights"]["block_structure"], key));
      if (b.has_value() && found.has_value() && *b != *found) {
        return absl::InvalidArgumentError(
            absl::StrCat("config.json quantization_config: ", key, " [", (*b)[0], ", ", (*b)[1],
                         "] differs from another scheme's [", (*found)[0], ", ", (*found)[1], "]"));
      }
      if (b.has_value()) found = b;
    }
  }
  return found;
}

absl::StatusOr<Fp8SourcePlan> PlanFp8Sources(const std::vector<TensorSpec>& tensors,
                                             std::optional<std::array<int64_t, 2>> block) {
  std::map<std::string_view, const TensorSpec*> by_name;
  for (const TensorSpec& t : tensors) by_name[t.name] = &t;
  Fp8SourcePlan plan;
  for (const TensorSpec& t : tensors) {
    if (!IsFp8Weight(t.dtype)) continue;
    const std::vector<std::string> names = Fp8ScaleNames(t.name);
    const TensorSpec* scale = nullptr;
    for (const std::string& n : names) {
      if (auto it = by_name.find(n); it != by_name.end()) {
        scale = it->second;
        break;
      }
    }
    if (scale == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "FP8 tensor \"", t.name, "\" ", ElemTypeName(t.dtype), " ", ShapeString(t.shape),
          " has no scale tensor (looked for \"", names[0], "\" and \"", names[1],
          "\"): it cannot be dequantized, and copying it would leave values no loader scales"));
    }
    RTNQ_ASSIGN_OR_RETURN(Fp8ScaleLayout layout,
                          RecognizeFp8Scale(t.name, t.dtype, t.shape, scale->name, scale->dtype,
                                            scale->shape, block));
    plan.consumed[scale->name] =
        absl::StrCat("scale of FP8 tensor \"", t.name, "\" (", layout.description,
                     "): consumed by its dequantization");
    plan.weights.emplace(t.name, std::move(layout));
  }
  if (plan.weights.empty()) return plan;
  for (const TensorSpec& t : tensors) {
    for (const char* suffix : kRuntimeScaleSuffixes) {
      if (absl::EndsWith(t.name, suffix) && plan.weights.count(t.name) == 0) {
        plan.consumed[t.name] =
            absl::StrCat("FP8 runtime scale (", suffix + 1,
                         "): dropped, the re-quantized checkpoint does not run FP8 kernels");
      }
    }
  }
  return plan;
}

}  // namespace rtnq
