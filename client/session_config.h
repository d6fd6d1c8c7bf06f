// The session config a run sends: --config FILE.json merged with the per-parameter flags.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "core/config/weight_config.h"

namespace rtnq::client {

/// The per-parameter flags, each set only when given (INC's key names in comments).
struct ConfigFlags {
  std::optional<std::string> preset;               ///< "preset"
  std::optional<std::string> dtype;                ///< "dtype" (int, int4, nf4, fp4, fp32...)
  std::optional<int64_t> bits;                     ///< "bits"
  std::optional<int64_t> group_size;               ///< "group_size"
  std::optional<std::string> scheme;               ///< "scheme"
  std::optional<double> quantile;                  ///< "quantile"
  std::optional<bool> full_range;                  ///< "enable_full_range"
  std::optional<bool> mse_search;                  ///< "enable_mse_search"
  std::optional<int64_t> group_dim;                ///< "group_dim"
  std::optional<std::string> double_quant_dtype;   ///< "double_quant_dtype"
  std::optional<int64_t> double_quant_bits;        ///< "double_quant_bits"
  std::optional<std::string> double_quant_scheme;  ///< "double_quant_scheme"
  std::optional<int64_t> double_quant_group_size;  ///< "double_quant_group_size"
};

/// The session config JSON text: the object in `config_path` (empty: {}) with every set flag
/// written over its top-level keys (so flags override the file's default config, never its
/// weight_config entries; --preset replaces the file's "preset", explicit keys still win over
/// it). Validated with ParseSessionConfigJson; errors name the file or the flag's key.
absl::StatusOr<std::string> MergeSessionConfig(const std::string& config_path,
                                               const ConfigFlags& flags);

/// A merged session config with the scheme `rtnq quantize --format gptq` uses when the user
/// chose none, and the one-line notice saying so.
struct GptqSchemeDefault {
  std::string config_json;
  std::string notice;  ///< empty when the config was left as it was
};

/// For --format gptq: a config whose top level names no "scheme" and no "preset" gets
/// "scheme": "sym", because vLLM serves 4- and 8-bit GPTQ on its fast Marlin kernels only when
/// sym (its 2026 releases refuse asym GPTQ). weight_config entries keep what they say.
/// InvalidArgument for text that is not a JSON object (MergeSessionConfig's output always is).
absl::StatusOr<GptqSchemeDefault> ApplyGptqSchemeDefault(const std::string& config_json);

}  // namespace rtnq::client
