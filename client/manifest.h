// The record rtnq leaves in a quantized checkpoint (safetensors __metadata__ key
// "rtnq.quantization", and config.json): which tensors were quantized with which config, so that
// `verify` can unpack and recompute them without being told again.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "client/checkpoint_util.h"
#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/layout/gptq.h"

namespace rtnq::client {

/// The safetensors __metadata__ key holding the manifest as JSON text.
inline constexpr char kManifestKey[] = "rtnq.quantization";

/// One quantized tensor as the original checkpoint held it.
struct ManifestTensor {
  std::string name;   ///< the original tensor, e.g. "model.layers.0.mlp.up_proj.weight"
  std::string layer;  ///< prefix of its packed tensors (LayerName(name))
  ElemType dtype = ElemType::kF32;
  std::vector<int64_t> shape;
  QuantConfig config;      ///< as configured (before any MSE search)
  std::string decided_by;  ///< DecidedByText of the resolution
  /// A stacked MoE expert tensor quantized expert by expert: its ExpertLayoutName ("" otherwise).
  std::string expert_layout = "";
};

/// Everything `verify` needs to know about a quantized checkpoint.
struct Manifest {
  OutputLayout format = OutputLayout::kFake;
  int compression_dim = 1;                     ///< inc
  GptqFormat gptq_format = GptqFormat::kV1;    ///< gptq: checkpoint-wide zero-point storage
  std::vector<ManifestTensor> tensors;         ///< in file order
  std::map<std::string, std::string> skipped;  ///< quantizable weights left as they were: reason
};

/// {"version": 1, "format": ..., ["compression_dim" | "checkpoint_format"], "tensors": {name:
/// {"layer", "dtype", "shape", "decided_by", "config": {full config}, ["expert_layout"]}},
/// "skipped": {name: why}}.
nlohmann::ordered_json ManifestToJson(const Manifest& m);

/// Parses ManifestToJson's output; InvalidArgument naming `where` and the field otherwise.
absl::StatusOr<Manifest> ManifestFromJson(std::string_view text, std::string_view where);

}  // namespace rtnq::client
