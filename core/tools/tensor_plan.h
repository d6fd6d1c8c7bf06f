// rtnq-local's shared pieces: opening a checkpoint, the session config, which tensors are
// quantized, and turning one tensor into its output tensors (quantize uses it to write, verify
// to recompute and compare).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/pack.h"
#include "core/quantize.h"
#include "core/sharded_checkpoint.h"
#include "core/weight_config.h"

namespace rtnq::local {

/// What `quantize` writes: fake-quantized floats, INC's packed layout, or the GPTQ layout.
enum class OutputFormat : uint8_t { kFake, kInc, kGptq };
/// "fake", "inc", "gptq".
const std::string& OutputFormatName(OutputFormat f);
/// InvalidArgument naming the value for anything else.
absl::StatusOr<OutputFormat> ParseOutputFormat(std::string_view s);

/// The session config: the JSON file at `path` (defaults when empty) with `preset`, when not
/// empty, applied to its default config (weight_config entries still override it). Errors name
/// the file.
absl::StatusOr<WeightConfigResolver> LoadSessionConfig(const std::string& path,
                                                       const std::string& preset);

/// A checkpoint given on the command line: a .safetensors file or a checkpoint directory.
struct InputCheckpoint {
  ShardedCheckpoint checkpoint;
  bool is_dir = false;
};
/// Opens `path` as a file or a directory (ShardedCheckpoint::Open).
absl::StatusOr<InputCheckpoint> OpenInput(const std::string& path);
/// Every tensor of `c`, shard by shard in file order (the order outputs are written in).
std::vector<const TensorInfo*> FileOrder(const ShardedCheckpoint& c);

/// What happens to one tensor.
enum class TensorAction : uint8_t {
  kQuantize,
  kSkip,  ///< a quantizable weight left as it is (see reason)
  kCopy,  ///< not a weight matrix (norms, biases, integer tensors): copied unchanged
};

/// The decision for one tensor and the config that applies to it.
struct TensorDecision {
  TensorAction action = TensorAction::kCopy;
  std::string reason;             ///< why it is skipped or copied
  bool excluded_by_name = false;  ///< skipped as embedding / lm_head / norm
  ResolvedConfig resolved;
};

/// The selection rule: 2-D F32/F16/BF16 tensors named "*.weight" are quantized, except names
/// containing "embed", "lm_head" or "norm" (unless a weight_config entry names that exact tensor
/// or layer) and tensors whose config has dtype fp32; everything else is copied.
TensorDecision DecideTensor(std::string_view name, ElemType dtype,
                            const std::vector<int64_t>& shape,
                            const WeightConfigResolver& resolver);

/// "model.layers.0.mlp.up_proj.weight" -> "model.layers.0.mlp.up_proj": the prefix of packed
/// tensors and the module name GPTQ configs use.
std::string LayerName(std::string_view tensor_name);

/// "default", or e.g. `pattern "*.down_proj"`.
std::string DecidedByText(const ResolvedConfig& r);

/// One tensor's outputs in the chosen format and the quality metrics of quantizing it.
struct TensorOutputs {
  std::vector<PackedTensor> tensors;
  TensorMetrics metrics;
};

/// Quantizes `weight` with `config` and lays the result out in `format`: fake keeps name, dtype
/// and shape; inc gives <layer>.qweight/.scales(/.qzeros) (compression dim 1); gptq gives
/// <layer>.qweight/.qzeros/.scales/.g_idx in `gptq_format`, plus <layer>.bias (F16) when
/// `bias` is given. Errors name the tensor.
absl::StatusOr<TensorOutputs> QuantizeForOutput(const TensorInfo& weight, const QuantConfig& config,
                                                OutputFormat format, GptqFormat gptq_format,
                                                const TensorInfo* bias, const Engine& engine);

/// The tensor's values as float32 (F32, F16 or BF16; InvalidArgument otherwise).
absl::StatusOr<std::vector<float>> ToFloats(const TensorInfo& t);

/// Signal-to-noise ratio in dB of `approx` against `ref` (+inf when equal) and the mean squared
/// error; sizes must match.
struct ErrorStats {
  double snr_db = 0;
  double mse = 0;
};
ErrorStats CompareFloats(const std::vector<float>& ref, const std::vector<float>& approx);

/// Reads a whole file; errors carry the errno code and name the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace rtnq::local
