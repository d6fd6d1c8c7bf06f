// Mixture-of-experts tensors: how stacked expert tensors lie on disk, which 2-D weight [out, in]
// each expert is, and which tensors are routers. Pure name/shape logic plus the copies that cut
// an expert's weight out of a stacked tensor and put it back.
//
// On-disk layouts of a stacked tensor "P.experts.gate_up_proj" / "P.experts.down_proj" [E, a, b]:
//   out-in              [E, out, in], gate/up as halves (transformers >= 5 fused Mixtral, Qwen-MoE,
//                       DeepSeek, ... : rows [0, I) gate, [I, 2I) up)
//   in-out              [E, in, out], halves along the last dim (Llama-4: y = x @ W[e])
//   in-out-interleaved  [E, in, out], gate/up alternating along the last dim (GPT-OSS: [..., ::2]
//                       gate, [..., 1::2] up)
//   out-in-interleaved  [E, out, in], gate/up alternating rows (GPT-OSS MXFP4 blocks order)
// Interleaving is never visible in a shape, and orientation is not either when hidden == 2I, so
// the layout comes from config.json's model_type or from --expert-layout, never from guessing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rtnq {

/// The arrangement of a stacked expert tensor.
struct ExpertLayout {
  bool transposed = false;   ///< [E, in, out] (y = x @ W[e]); false: [E, out, in] (nn.Linear)
  bool interleaved = false;  ///< fused gate/up alternate along the fused dim; false: two halves
  bool operator==(const ExpertLayout&) const = default;
};

/// "out-in", "in-out", "out-in-interleaved" or "in-out-interleaved" (the --expert-layout values).
std::string ExpertLayoutName(ExpertLayout layout);
/// Parses those names; InvalidArgument listing them otherwise.
absl::StatusOr<ExpertLayout> ParseExpertLayout(std::string_view name);

/// The layout config.json implies: model_type (or text_config.model_type, or architectures[0])
/// gpt_oss -> in-out-interleaved; llama4 / llama4_text -> in-out; the families transformers 5
/// fuses on load (mixtral, minimax, qwen2_moe, qwen3_moe, qwen3_next, deepseek_v2/v3, glm4_moe,
/// olmoe, phimoe, ...) -> out-in. nullopt for anything else.
std::optional<ExpertLayout> ExpertLayoutFromConfig(const nlohmann::ordered_json& config);
/// config.json hidden_size (or text_config.hidden_size), when present and positive.
std::optional<int64_t> HiddenSizeFromConfig(const nlohmann::ordered_json& config);

/// The projection a stacked expert tensor holds.
enum class ExpertProj : uint8_t { kGateUp, kGate, kUp, kDown };

/// A recognised stacked expert tensor name.
struct StackedExperts {
  std::string prefix;  ///< "model.layers.0.mlp.experts"
  ExpertProj proj = ExpertProj::kDown;
};

/// "P.experts.{gate_up_proj,gate_proj,up_proj,down_proj}" with or without a trailing ".weight";
/// nullopt for any other name (per-expert "P.experts.3.up_proj.weight" included: already 2-D).
std::optional<StackedExperts> StackedExpertsOf(std::string_view tensor_name);

/// One expert's 2-D weight [out, in] inside a stacked tensor [E, a, b]: element (o, i) lies at
/// [expert, offset + o * stride, i] (out-in) or [expert, i, offset + o * stride] (in-out).
struct ExpertSlice {
  std::string layer;  ///< "P.experts.3.gate_proj": the base name of its packed tensors
  int64_t expert = 0;
  int64_t out = 0, in = 0;
  int64_t offset = 0, stride = 1;
};

/// The 2-D weights of stacked tensor `name` with `shape` [E, a, b] in `layout`: per expert, gate
/// then up for gate_up_proj (split as halves or de-interleaved), otherwise one. When
/// `hidden_size` is known, the dimension that must be the hidden size is checked. InvalidArgument
/// naming the tensor, its shape, the layout and the --expert-layout flag for a name that is not a
/// stacked expert tensor, a shape that is not 3-D, an odd fused gate/up dimension, or a
/// hidden-size mismatch.
absl::StatusOr<std::vector<ExpertSlice>> PlanExpertSlices(std::string_view name,
                                                          const std::vector<int64_t>& shape,
                                                          ExpertLayout layout,
                                                          std::optional<int64_t> hidden_size);

/// Copies `slice` out of the stacked tensor's bytes (`shape` [E, a, b], `elem_size` bytes per
/// element) into `out`, [slice.out, slice.in] row-major.
void GatherExpertSlice(const uint8_t* stacked, const std::vector<int64_t>& shape, int elem_size,
                       bool transposed, const ExpertSlice& slice, uint8_t* out);
/// The inverse: writes [slice.out, slice.in] values from `in` back into the stacked bytes.
void ScatterExpertSlice(const uint8_t* in, const std::vector<int64_t>& shape, int elem_size,
                        bool transposed, const ExpertSlice& slice, uint8_t* stacked);

/// True for MoE routers and shared-expert gates, which loaders keep in float: a layer whose last
/// component is "gate" (mlp.gate, block_sparse_moe.gate) or "shared_expert_gate", or with a
/// component "router" (mlp.router, feed_forward.router). "gate_proj" is not a router.
bool IsMoeRouter(std::string_view tensor_name);

}  // namespace rtnq
