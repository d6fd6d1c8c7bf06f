// Synthetic Llama-shaped checkpoints: realistic enough weights (heavy tails, a few outlier input
// channels, norms near 1) to exercise quantization end to end without downloading a model.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/safetensors_header.h"

namespace rtnq {

/// The dimensions of a Llama decoder (names as Hugging Face's LlamaConfig spells them).
struct SynthShape {
  std::string name;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;  ///< fewer than `heads` = grouped-query attention
  int64_t vocab = 0;

  int64_t head_dim() const { return heads > 0 ? hidden / heads : 0; }
};

/// Presets: "tiny", "small", "llama7b-layer" (one decoder layer of Llama-2-7B: hidden 4096,
/// intermediate 11008, 32 heads) and "llama70b-layer" (one decoder layer of Llama-2/3-70B: hidden
/// 8192, intermediate 28672, grouped-query attention with 64 heads and 8 KV heads of 128), both
/// with a 32000-token vocabulary. The small presets' intermediate sizes follow Llama's rule (8/3
/// hidden rounded up to a multiple of 256); every projection is divisible by GPTQ's usual group
/// size of 128. Change `layers` for more decoder layers of the same shape.
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
  ElemType dtype = ElemType::kBF16;  ///< BF16, F16 or F32
  /// false: no embed_tokens and lm_head (the decoder layers and norms alone; config.json still
  /// names the vocabulary).
  bool embeddings = true;
};

/// The checkpoint's tensors in file order: embed_tokens, then per layer the attention and MLP
/// projections and both norms, then model.norm and lm_head (the first and last only with
/// `embeddings`).
std::vector<TensorSpec> SynthTensorSpecs(const SynthShape& shape, ElemType dtype,
                                         bool embeddings = true);

/// config.json of a LlamaForCausalLM with `shape` stored in `dtype`.
std::string SynthConfigJson(const SynthShape& shape, ElemType dtype);

/// Writes the checkpoint and its config.json into options.output_dir. Values depend only on
/// (seed, tensor name, row), so the bytes are identical whatever the engine's thread count;
/// rows are generated in blocks in parallel and streamed to disk, so memory stays small.
/// Shards split the tensors in file order into runs of roughly equal bytes. InvalidArgument for
/// a bad shape, dtype or shard count (more shards than tensors); FailedPrecondition when the
/// directory is not empty; I/O errors keep their code. A failure leaves no safetensors file.
absl::Status WriteSynthCheckpoint(const SynthOptions& options, const Engine& engine);

}  // namespace rtnq
