// `rtnq-local quantize`: quantizes a local checkpoint in-process and writes the result.
#pragma once

#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "core/engine.h"
#include "core/pack.h"
#include "core/tools/tensor_plan.h"

namespace rtnq::local {

/// Options of RunQuantize; main() fills them from flags.
struct QuantizeCommandOptions {
  std::string input;        ///< a .safetensors file or a checkpoint directory
  std::string output;       ///< a file for file input; a new or empty directory for a directory
  std::string config_path;  ///< session config JSON; empty: defaults
  std::string preset;       ///< applied to the default config
  OutputFormat format = OutputFormat::kFake;
  std::optional<GptqFormat> gptq_format;  ///< unset: v1 when every layer is sym, else v2
  EngineOptions engine;
};

/// Plans every tensor (config, selection, GPTQ compatibility) before quantizing any, quantizes
/// the selected ones one after another (each in parallel over the engine), holds all results in
/// memory and then writes one safetensors file (model.safetensors for directory output) with the
/// manifest in its metadata; for directories it also copies the other regular files, recording
/// the quantization in config.json ("quantization_config" plus quantize_config.json for gptq,
/// "rtnq_quantization" otherwise). Prints a line per tensor and a summary to `out`. On error
/// nothing is left at the output path; the message names the tensor.
absl::Status RunQuantize(const QuantizeCommandOptions& options, std::ostream& out);

}  // namespace rtnq::local
