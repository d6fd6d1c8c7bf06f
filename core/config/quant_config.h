// The quantization parameters of ../shared/spec/RTN.md, their validation, presets and JSON form.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rtnq {

/// What a tensor is quantized to. kFp32 means "leave unquantized".
enum class QuantDtype : uint8_t { kInt, kNf4, kFp4, kFp4E2M1, kFp32 };
/// Integer scheme; ignored for the float-4 types.
enum class Scheme : uint8_t { kSym, kAsym };

/// One complete quantization config (every field of the spec). Defaults are the reference's.
struct QuantConfig {
  QuantDtype dtype = QuantDtype::kInt;
  int bits = 4;
  int64_t group_size = 32;  ///< -1: one group per row.
  Scheme scheme = Scheme::kAsym;
  double quantile = 1.0;  ///< (0, 1]; rounded to float32 before use.
  bool enable_full_range = false;
  bool enable_mse_search = false;
  int group_dim = 1;  ///< 1: groups along a row of W[out, in]; 0: along a column.
  // Double quantization of the scales; double_quant_dtype kFp32 means off.
  QuantDtype double_quant_dtype = QuantDtype::kFp32;
  int double_quant_bits = 8;
  Scheme double_quant_scheme = Scheme::kSym;
  int64_t double_quant_group_size = 256;

  bool double_quant() const { return double_quant_dtype == QuantDtype::kInt; }
  bool is_float4() const {
    return dtype == QuantDtype::kNf4 || dtype == QuantDtype::kFp4 || dtype == QuantDtype::kFp4E2M1;
  }
  bool operator==(const QuantConfig&) const = default;
};

/// A partial config: only the fields a JSON object or weight_config entry sets.
struct QuantConfigPatch {
  std::optional<QuantDtype> dtype;
  std::optional<int> bits;
  std::optional<int64_t> group_size;
  std::optional<Scheme> scheme;
  std::optional<double> quantile;
  std::optional<bool> enable_full_range;
  std::optional<bool> enable_mse_search;
  std::optional<int> group_dim;
  std::optional<QuantDtype> double_quant_dtype;
  std::optional<int> double_quant_bits;
  std::optional<Scheme> double_quant_scheme;
  std::optional<int64_t> double_quant_group_size;

  /// Overwrites in `cfg` exactly the fields this patch sets.
  void ApplyTo(QuantConfig& cfg) const;
  bool empty() const;
};

/// True for asymmetric integer quantization: the only case with zero points (stored as u8 codes).
inline bool IsIntAsym(const QuantConfig& cfg) {
  return cfg.dtype == QuantDtype::kInt && cfg.scheme == Scheme::kAsym;
}

/// Checks every field against the spec's ranges. The error names the field and the value.
absl::Status ValidateConfig(const QuantConfig& cfg);

/// Names of dtypes/schemes as the API spells them ("int", "nf4", "fp4", "fp4_e2m1_bnb",
/// "fp4_e2m1", "fp32"; "sym", "asym").
const std::string& QuantDtypeName(QuantDtype d);
absl::StatusOr<QuantDtype> ParseQuantDtype(std::string_view s);
const std::string& SchemeName(Scheme s);
absl::StatusOr<Scheme> ParseScheme(std::string_view s);

/// Named presets: "BNB_NF4" and "GGML_TYPE_Q4_K" (case-insensitive). NotFound for others.
absl::StatusOr<QuantConfigPatch> PresetPatch(std::string_view name);

/// Parses a JSON object with INC's key names (`num_bits` or `bits`, `group_size`, `scheme`,
/// `quantile`, `dtype`, `enable_full_range`, `enable_mse_search`, `group_dim`,
/// `double_quant_dtype`, `double_quant_bits`, `double_quant_scheme`,
/// `double_quant_group_size`, `preset`). A preset is applied first, explicit keys on top.
/// Unknown keys and wrongly typed values are InvalidArgument naming the key. `where` prefixes
/// messages (e.g. "weight_config[\"lm_head\"]").
absl::StatusOr<QuantConfigPatch> ParseConfigPatchJson(std::string_view json_text,
                                                      std::string_view where = "config");

/// Serializes a full config as a JSON object with the spec's key names.
std::string ConfigToJson(const QuantConfig& cfg);

/// Human-readable one-line summary, e.g. "int4 asym g32".
std::string ConfigSummary(const QuantConfig& cfg);

}  // namespace rtnq
