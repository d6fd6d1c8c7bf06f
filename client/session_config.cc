#include "client/session_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "client/checkpoint_util.h"
#include "core/config/config_json.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"

namespace rtnq::client {
namespace {

template <typename T>
void Set(nlohmann::ordered_json& j, const char* key, const std::optional<T>& v) {
  if (v.has_value()) j[key] = *v;
}

}  // namespace

absl::StatusOr<std::string> MergeSessionConfig(const std::string& config_path,
                                               const ConfigFlags& f) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  std::string where = "flags";
  if (!config_path.empty()) {
    RTNQ_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(config_path));
    RTNQ_ASSIGN_OR_RETURN(j, ParseStrictJson(text, config_path));
    if (!j.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(config_path, ": not a JSON object"));
    }
    where = config_path;
  }
  // "num_bits" is an alias of "bits": a flag must replace it, not sit next to it.
  if (f.bits.has_value()) j.erase("num_bits");
  Set(j, "preset", f.preset);
  Set(j, "dtype", f.dtype);
  Set(j, "bits", f.bits);
  Set(j, "group_size", f.group_size);
  Set(j, "scheme", f.scheme);
  Set(j, "quantile", f.quantile);
  Set(j, "enable_full_range", f.full_range);
  Set(j, "enable_mse_search", f.mse_search);
  Set(j, "group_dim", f.group_dim);
  Set(j, "double_quant_dtype", f.double_quant_dtype);
  Set(j, "double_quant_bits", f.double_quant_bits);
  Set(j, "double_quant_scheme", f.double_quant_scheme);
  Set(j, "double_quant_group_size", f.double_quant_group_size);
  const std::string text = j.dump();
  absl::StatusOr<WeightConfigResolver> parsed = ParseSessionConfigJson(text);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat(where, ": ", parsed.status().message()));
  }
  return text;
}

absl::StatusOr<GptqSchemeDefault> ApplyGptqSchemeDefault(const std::string& config_json) {
  RTNQ_ASSIGN_OR_RETURN(nlohmann::ordered_json j, ParseStrictJson(config_json, "session config"));
  if (!j.is_object()) return absl::InvalidArgumentError("session config: not a JSON object");
  if (j.contains("scheme") || j.contains("preset")) return GptqSchemeDefault{config_json, ""};
  j["scheme"] = "sym";
  return GptqSchemeDefault{
      j.dump(),
      "--format gptq without --scheme quantizes sym: vLLM serves 4/8-bit sym GPTQ on Marlin; "
      "--scheme asym writes gptq_v2, which vLLM does not serve fast (use --format awq or "
      "compressed-tensors for fast asym int4)"};
}

}  // namespace rtnq::client
