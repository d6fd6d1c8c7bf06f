// Synthetic Llama-shaped checkpoints: realistic enough weights (heavy tails, a few outlier input
// channels, norms near 1) to exercise quantization end to end without downloading a model. MoE
// presets replace each MLP by routed experts stored the ways real checkpoints store them, and
// FP8 checkpoints store the projections as F8_E4M3 with DeepSeek's 128x128 block scales.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/io/safetensors_header.h"

namespace rtnq {

/// How a MoE preset stores its experts (see core/expert_layout.h for the layouts).
enum class SynthExperts : uint8_t {
  kNone,         ///< a dense Llama MLP
  kFused,        ///< Qwen3-MoE as transformers 5 holds it: experts.gate_up_proj [E, 2I, H] (gate
                 ///< rows first), experts.down_proj [E, H, I]; router mlp.gate
  kPerExpert,    ///< Qwen3-MoE on the hub: experts.{i}.{gate,up,down}_proj.weight; router mlp.gate
  kInterleaved,  ///< GPT-OSS: experts.gate_up_proj [E, H, 2I] with gate/up alternating along the
                 ///< last dim, experts.down_proj [E, I, H], their biases; router mlp.router
  kTransposed,   ///< Llama-4: feed_forward.experts.gate_up_proj [E, H, 2I] (halves),
                 ///< down_proj [E, I, H], feed_forward.router and a shared expert
};

/// The dimensions of a Llama decoder (names as Hugging Face's LlamaConfig spells them).
struct SynthShape {
  std::string name;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;  ///< fewer than `heads` = grouped-query attention
  int64_t vocab = 0;
  SynthExperts expert_storage = SynthExperts::kNone;
  int64_t experts = 0;              ///< routed experts per layer (MoE presets)
  int64_t expert_intermediate = 0;  ///< I of each expert (MoE presets)

  int64_t head_dim() const { return heads > 0 ? hidden / heads : 0; }
};

/// Presets: "tiny", "small", "llama7b-layer" (one decoder layer of Llama-2-7B: hidden 4096,
/// intermediate 11008, 32 heads) and "llama70b-layer" (one decoder layer of Llama-2/3-70B: hidden
/// 8192, intermediate 28672, grouped-query attention with 64 heads and 8 KV heads of 128), both
/// with a 32000-token vocabulary; and the MoE presets "moe-tiny" (fused experts),
/// "moe-tiny-per-expert", "moe-tiny-interleaved" and "moe-tiny-transposed" (16 experts of
/// I = 256 in 4 layers, hidden 256, so the experts hold ~90% of the bytes). The small presets'
/// intermediate sizes follow Llama's rule (8/3 hidden rounded up to a multiple of 256); every
/// projection is divisible by GPTQ's usual group size of 128. Change `layers` for more decoder
/// layers of the same shape.
const std::vector<SynthShape>& SynthShapePresets();
/// The preset called `name`; NotFound listing the presets otherwise.
absl::StatusOr<SynthShape> SynthShapeByName(std::string_view name);
/// InvalidArgument naming the field when a dimension is not positive, heads does not divide
/// hidden, or kv_heads does not divide heads.
absl::Status ValidateSynthShape(const SynthShape& shape);

/// What WriteSynthCheckpoint writes and where.
struct SynthOptions {
  SynthShape shape;
  std::string output_dir;  ///< created if absent; must not hold files already
  int shards = 1;          ///< 1: model.safetensors; more: model-0000i-of-0000n + index
  uint64_t seed = 0;
  /// BF16, F16 or F32; or F8_E4M3: projections (attention, MLP, experts) in FP8 with
  /// "<name>_scale_inv" F32 128x128 block scales, everything else in BF16.
  ElemType dtype = ElemType::kBF16;
  /// false: no embed_tokens and lm_head (the decoder layers and norms alone; config.json still
  /// names the vocabulary).
  bool embeddings = true;
};

/// The checkpoint's tensors in file order: embed_tokens, then per layer the attention and MLP
/// (or router and experts) projections and both norms, then model.norm and lm_head (the first
/// and last only with `embeddings`); with F8_E4M3 each projection is followed by its scale.
std::vector<TensorSpec> SynthTensorSpecs(const SynthShape& shape, ElemType dtype,
                                         bool embeddings = true);

/// config.json of a LlamaForCausalLM (MoE: Qwen3MoeForCausalLM, GptOssForCausalLM or
/// Llama4ForCausalLM) with `shape` stored in `dtype` (F8_E4M3: an "fp8" quantization_config with
/// weight_block_size [128, 128], as DeepSeek-V3 ships).
std::string SynthConfigJson(const SynthShape& shape, ElemType dtype);

/// Writes the checkpoint and its config.json into options.output_dir. Values depend only on
/// (seed, tensor name, row), so the bytes are identical whatever the engine's thread count;
/// rows are generated in blocks in parallel and streamed to disk, so memory stays small.
/// Shards split the tensors in file order into runs of roughly equal bytes. InvalidArgument for
/// a bad shape, dtype or shard count (more shards than tensors); FailedPrecondition when the
/// directory is not empty; I/O errors keep their code. A failure leaves no safetensors file.
absl::Status WriteSynthCheckpoint(const SynthOptions& options, const Engine& engine);

}  // namespace rtnq
