// How a quantize run treats MoE experts: which layout stacked expert tensors have (--expert-layout
// or config.json), which 2-D weights each becomes, the per-expert biases that follow them, and the
// rule that the experts of one MoE layer share one config (engines load them as one module).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/config/weight_config.h"
#include "core/expert_layout.h"

namespace rtnq::client {

/// The expert layout of a run and where it came from.
struct ExpertContext {
  std::optional<ExpertLayout> layout;
  std::string source;      ///< "--expert-layout" or `config.json model_type "qwen3_moe"`
  std::string model_type;  ///< config.json's, for messages when the layout is unknown
  std::optional<int64_t> hidden_size;
};

/// The flag wins over config.json (ExpertLayoutFromConfig); hidden_size from config.json.
ExpertContext MakeExpertContext(std::optional<ExpertLayout> flag,
                                const nlohmann::ordered_json& config);

/// A 3-D tensor with a stacked expert name (core/expert_layout.h StackedExpertsOf).
bool IsStackedExperts(std::string_view name, const std::vector<int64_t>& shape);

/// The 2-D weights stacked tensor `name` is quantized as. InvalidArgument naming the tensor, its
/// shape and --expert-layout when no layout is known (never a silent copy or a guess), or when
/// the layout does not fit the shape and hidden_size (PlanExpertSlices).
absl::StatusOr<std::vector<ExpertSlice>> PlanStackedExperts(std::string_view name,
                                                            const std::vector<int64_t>& shape,
                                                            const ExpertContext& context);

/// For "P.experts.gate_up_proj_bias" / "P.experts.down_proj_bias" [E, F]: the stacked tensor
/// whose per-expert weights it biases ("P.experts.gate_up_proj"), else "".
std::string StackedBiasOwner(std::string_view name, const std::vector<int64_t>& shape);

/// One tensor of an expert group as the plan decided it.
struct ExpertMember {
  std::string name;
  bool quantized = false;
  std::string reason;  ///< not quantized: why
  ResolvedConfig resolved;
  const std::vector<ExpertSlice>* slices = nullptr;  ///< stacked: its experts' weights
};

/// The experts of one MoE layer (FusedGroupOf kind "experts": per-expert 2-D weights and stacked
/// tensors alike) are loaded as one fused module, so they must share one config: all quantized
/// with equal configs, or none quantized. A stacked tensor's experts, and gate/up of a fused
/// gate_up_proj, cannot differ by construction; a weight_config entry naming one of their
/// per-expert weights with another config is an error too. InvalidArgument naming the two
/// tensors (or the entry) and their configs.
absl::Status CheckExpertGroups(const std::vector<ExpertMember>& members,
                               const WeightConfigResolver& resolver);

}  // namespace rtnq::client
