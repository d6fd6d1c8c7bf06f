// Which engines load a checkpoint as intended, decided before any data is read: each engine's
// rules for the layout (bits, group sizes, sym/asym, per-layer overrides, the fused modules whose
// parts must share one config) applied to the planned per-layer configs. `--target` turns the
// chosen engine's problems into an error; `rtnq inspect` prints the verdicts of a written file.
// Rules as read in the engines' source (README "Output formats" names the files and releases).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/layout/gptq.h"
#include "core/layout/quantized_layer.h"

namespace rtnq {

/// The engine a checkpoint is meant for (the CLI's --target).
enum class LoaderTarget : uint8_t { kAny, kVllm, kTransformers };

/// "any", "vllm", "transformers".
const std::string& LoaderTargetName(LoaderTarget t);
/// InvalidArgument naming the value for anything else.
absl::StatusOr<LoaderTarget> ParseLoaderTarget(std::string_view s);

/// A checkpoint as loaders see it, from its plan (or its records).
struct LoaderRulesInput {
  std::string layout;  ///< "fake", "inc", "gptq", "compressed-tensors" or "awq"
  GptqFormat gptq_format = GptqFormat::kV1;  ///< gptq only
  std::vector<QuantizedLayer> layers;        ///< the quantized Linear layers
  std::vector<std::string> unquantized;      ///< Linear layers left in float
};

/// One engine's verdict.
struct EngineVerdict {
  std::string
      engine;  ///< "vLLM", "transformers", "GPTQModel", "AutoGPTQ", "Intel Neural Compressor"
  bool loads = false;                 ///< loads the file and computes the intended weights
  std::string kernel;                 ///< how it runs the weights when it loads them
  std::vector<std::string> problems;  ///< why it does not (each names the layers and the rule)
  std::vector<std::string> notes;     ///< caveats that do not stop it (slower kernels, packages)
  bool has_loader = true;             ///< false: the engine has no loader for the layout at all
  bool operator==(const EngineVerdict&) const = default;
};

/// The verdicts of the engines that read `in.layout` (vLLM and transformers always first).
/// Problems common to a rule are reported once with a count and the first layers.
std::vector<EngineVerdict> CheckLoaders(const LoaderRulesInput& in);

/// Applies --target: for kVllm / kTransformers, InvalidArgument naming the layout and listing
/// that engine's problems when it does not load the file, else its notes as warnings; for kAny,
/// the problems of every engine that has a loader for the layout, as warnings
/// ("<engine>: <problem>").
absl::StatusOr<std::vector<std::string>> ApplyLoaderTarget(const std::vector<EngineVerdict>& v,
                                                           LoaderTarget target,
                                                           std::string_view layout);

}  // namespace rtnq
