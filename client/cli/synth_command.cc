// `rtnq synth -o DIR --shape NAME`: a synthetic Llama-shaped (or MoE) checkpoint for demos, tests
// and benchmarks.
#include <chrono>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/cli/command.h"
#include "client/cli/flags.h"
#include "client/synth/synth_checkpoint.h"

ABSL_FLAG(std::string, shape, "tiny",
          "synth: tiny, small, llama7b-layer, llama70b-layer, moe-tiny, moe-tiny-per-expert, "
          "moe-tiny-interleaved or moe-tiny-transposed");
ABSL_FLAG(int32_t, layers, 0, "synth: decoder layers (0: the shape's own count)");
ABSL_FLAG(bool, embeddings, true, "synth: write embed_tokens and lm_head");
ABSL_FLAG(int32_t, shards, 1, "synth: safetensors shards (more than 1 writes an index)");
ABSL_FLAG(uint64_t, seed, 0, "synth: random seed; the same seed gives the same bytes");
// Not --dtype: that is quantize's quantization dtype.
ABSL_FLAG(std::string, weight_dtype, "bf16",
          "synth: dtype of the weights, bf16, f16, f32 or fp8 (F8_E4M3 projections with 128x128 "
          "block scales)");

namespace rtnq::client::cli {
namespace {

constexpr char kUsage[] = R"(rtnq synth -o DIR [--shape NAME] [--layers N] [--no-embeddings]
             [--shards N] [--seed S] [--weight-dtype bf16|f16|f32|fp8] [--threads N]
  Writes a synthetic Llama-shaped checkpoint (heavy-tailed weights with outlier channels,
  embeddings, norms, lm_head) and its config.json into a new or empty DIR. Shapes: tiny (hidden
  256, 2 layers), small (hidden 1024, 4 layers), llama7b-layer (hidden 4096, intermediate 11008,
  32 heads, 1 layer), llama70b-layer (hidden 8192, intermediate 28672, 64 heads / 8 KV heads,
  1 layer: 1.6 GiB bf16, 2.6 GiB with its 32000-token embeddings and lm_head); MoE (hidden 256,
  4 layers of 16 experts of 256, routers): moe-tiny (Qwen3-MoE, fused 3-D experts [E, 2I, H]),
  moe-tiny-per-expert (experts.{i}.*_proj.weight), moe-tiny-interleaved (GPT-OSS, [E, H, 2I]
  with gate/up interleaved, expert biases), moe-tiny-transposed (Llama-4, [E, H, 2I], shared
  expert). --layers N repeats the decoder layer N times; --no-embeddings leaves out embed_tokens
  and lm_head. --weight-dtype is the stored dtype of the weights (quantize's --dtype is the
  quantization dtype); fp8 stores every projection as F8_E4M3 with DeepSeek-style 128x128
  "_scale_inv" block scales.)";

absl::StatusOr<ElemType> ParseWeightDtype(const std::string& s) {
  if (s == "bf16" || s == "BF16") return ElemType::kBF16;
  if (s == "f16" || s == "fp16" || s == "F16") return ElemType::kF16;
  if (s == "f32" || s == "fp32" || s == "F32") return ElemType::kF32;
  if (s == "fp8" || s == "f8_e4m3" || s == "F8_E4M3") return ElemType::kF8E4M3;
  return absl::InvalidArgumentError(
      absl::StrCat("--weight-dtype must be bf16, f16, f32 or fp8, got \"", s, "\""));
}

int Run(const Command& self, const ParsedArgs& args) {
  if (!args.positional.empty()) return UsageError(self, "synth takes no positional arguments");
  SynthOptions options;
  options.output_dir = absl::GetFlag(FLAGS_output);
  if (options.output_dir.empty()) return UsageError(self, "synth needs -o DIR");
  absl::StatusOr<ElemType> dtype = ParseWeightDtype(absl::GetFlag(FLAGS_weight_dtype));
  if (!dtype.ok()) return UsageError(self, std::string(dtype.status().message()));
  options.dtype = *dtype;
  absl::StatusOr<SynthShape> shape = SynthShapeByName(absl::GetFlag(FLAGS_shape));
  if (!shape.ok()) return Fail(shape.status());
  options.shape = *shape;
  if (args.Has("layers")) {
    const int32_t layers = absl::GetFlag(FLAGS_layers);
    if (layers < 1) return UsageError(self, absl::StrCat("--layers must be >= 1, got ", layers));
    options.shape.layers = layers;
  }
  options.embeddings = absl::GetFlag(FLAGS_embeddings);
  options.shards = absl::GetFlag(FLAGS_shards);
  options.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(EngineOptionsFromFlags());
  if (!engine.ok()) return Fail(engine.status());

  const auto start = std::chrono::steady_clock::now();
  if (absl::Status s = WriteSynthCheckpoint(options, **engine); !s.ok()) return Fail(s);
  uint64_t bytes = 0;
  const std::vector<TensorSpec> specs =
      SynthTensorSpecs(options.shape, options.dtype, options.embeddings);
  for (const TensorSpec& t : specs) {
    uint64_t n = ElemSize(t.dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    bytes += n;
  }
  const std::string mlp =
      options.shape.expert_storage == SynthExperts::kNone
          ? absl::StrCat("intermediate ", options.shape.intermediate)
          : absl::StrCat(options.shape.experts, " experts of ", options.shape.expert_intermediate);
  std::cout << absl::StrFormat(
      "synth: wrote %s (hidden %d, %s, %d layers, %d/%d heads, vocab %d): %d tensors, "
      "%.2f MiB %s, %d shard(s), seed %d, to %s in %.2f s\n",
      options.shape.name, options.shape.hidden, mlp, options.shape.layers, options.shape.heads,
      options.shape.kv_heads, options.shape.vocab, specs.size(), bytes / 1048576.0,
      ElemTypeName(options.dtype), options.shards, options.seed, options.output_dir,
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return kExitOk;
}

}  // namespace

const Command& SynthCommand() {
  static const Command* command = new Command{
      .name = "synth",
      .summary = "write a synthetic Llama-shaped or MoE checkpoint (optionally FP8)",
      .usage = kUsage,
      .flags =
          FlagSet({kEngineFlags,
                   {"output", "shape", "layers", "embeddings", "shards", "seed", "weight_dtype"}}),
      .run = Run};
  return *command;
}

}  // namespace rtnq::client::cli
