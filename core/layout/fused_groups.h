// Which tensors inference engines fuse into one module and therefore must share one quantization
// config: vLLM and others load q/k/v of one attention as `qkv_proj`, gate/up of one MLP as
// `gate_up_proj`, DeepSeek's q_a/kv_a projections as `fused_qkv_a_proj`, and all experts of one
// MoE layer as a single FusedMoE. Names as Llama, Mistral, Qwen2/3(-MoE), Mixtral, DeepSeek
// V2/V3 and Llama-4 checkpoints spell them. Pure name logic: used by the planner (one choice per
// group) and by loader-rule checks.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rtnq {

/// The fused module a tensor is part of.
struct FusedGroup {
  /// The fused module's name, e.g. "model.layers.0.self_attn.qkv_proj",
  /// "model.layers.0.mlp.gate_up_proj", "model.layers.3.mlp.experts".
  std::string name;
  /// "qkv", "qkv_a", "gate_up" or "experts".
  std::string kind;
  bool operator==(const FusedGroup&) const = default;
};

/// The group of `tensor_name` (a tensor or layer name), or nullopt when engines load it alone.
/// Recognised: `P.{q,k,v}_proj` -> `P.qkv_proj`; `P.{q_a_proj,kv_a_proj_with_mqa}` ->
/// `P.fused_qkv_a_proj`; `P.{gate,up}_proj` -> `P.gate_up_proj` (dense and shared-expert MLPs);
/// `P.experts.N.{gate,up,down}_proj`, `P.experts.N.{w1,w2,w3}` (Mixtral) and stacked
/// `P.experts.{gate_up_proj,gate_proj,up_proj,down_proj}` -> `P.experts`. Routers
/// (`mlp.gate`, `shared_expert_gate`) and everything else stand alone.
std::optional<FusedGroup> FusedGroupOf(std::string_view tensor_name);

/// Partitions `names` into groups that must share a config: members of one fused module
/// together, every other name alone. Groups are ordered by their first member's position and
/// list indices into `names` in order.
std::vector<std::vector<size_t>> GroupFusedTensors(const std::vector<std::string>& names);

}  // namespace rtnq
