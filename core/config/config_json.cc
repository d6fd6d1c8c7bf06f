#include "core/config/config_json.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/strict_json.h"
#include "core/status_macros.h"

namespace rtnq {
namespace {

// INC's key names, in the order error messages list them.
constexpr std::string_view kAcceptedKeys[] = {"bits",
                                              "num_bits",
                                              "group_size",
                                              "scheme",
                                              "quantile",
                                              "dtype",
                                              "enable_full_range",
                                              "enable_mse_search",
                                              "group_dim",
                                              "double_quant_dtype",
                                              "double_quant_bits",
                                              "double_quant_scheme",
                                              "double_quant_group_size",
                                              "preset"};

absl::Status Error(std::string_view where, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(where), ": ", std::string(message)));
}

// A value as it appeared, short enough for an error message (bounded work whatever its size or
// depth: the value may be a peer's).
template <typename Json>
std::string Brief(const Json& v) {
  return JsonSnippet(v);
}

// Quoted, escaped and cut: the string may be a peer's.
std::string Quote(std::string_view s) { return QuoteForMessage(s); }

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

absl::Status UnknownKeyError(std::string_view where, std::string_view key,
                             std::span<const std::string_view> skip_keys) {
  std::vector<std::string_view> accepted(std::begin(kAcceptedKeys), std::end(kAcceptedKeys));
  accepted.insert(accepted.end(), skip_keys.begin(), skip_keys.end());
  std::string hint;
  if (key.size() <= 64) {  // bound the quadratic distance on hostile input
    size_t best = std::numeric_limits<size_t>::max();
    for (std::string_view k : accepted) {
      const size_t d = EditDistance(key, k);
      if (d < best) {
        best = d;
        hint = absl::StrCat(" (did you mean ", Quote(k), "?)");
      }
    }
    if (best > std::max<size_t>(2, key.size() / 3)) hint.clear();
  }
  std::vector<std::string> names(accepted.begin(), accepted.end());
  return Error(where, absl::StrCat("unknown key ", Quote(key), hint,
                                   "; accepted keys: ", absl::StrJoin(names, ", ")));
}

template <typename Json>
absl::StatusOr<int64_t> GetInt64(const Json& v, std::string_view key, std::string_view where) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.template get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Error(where, absl::StrCat(std::string(key), " ", Brief(v), " is out of range"));
    }
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.template get<int64_t>();
  return Error(where, absl::StrCat(std::string(key), " must be an integer, got ", Brief(v)));
}

template <typename Json>
absl::StatusOr<int> GetInt(const Json& v, std::string_view key, std::string_view where) {
  RTNQ_ASSIGN_OR_RETURN(const int64_t i, GetInt64(v, key, where));
  if (i < std::numeric_limits<int>::min() || i > std::numeric_limits<int>::max()) {
    return Error(where, absl::StrCat(std::string(key), " ", i, " is out of range"));
  }
  return static_cast<int>(i);
}

template <typename Json>
absl::StatusOr<bool> GetBool(const Json& v, std::string_view key, std::string_view where) {
  if (!v.is_boolean()) {
    return Error(where, absl::StrCat(std::string(key), " must be true or false, got ", Brief(v)));
  }
  return v.template get<bool>();
}

template <typename Json>
absl::StatusOr<std::string> GetString(const Json& v, std::string_view key, std::string_view where) {
  if (!v.is_string()) {
    return Error(where, absl::StrCat(std::string(key), " must be a string, got ", Brief(v)));
  }
  return v.template get<std::string>();
}

// A dtype name; INC's "int4"/"int8" spelling also fixes the bit width.
struct DtypeValue {
  QuantDtype dtype;
  std::optional<int> bits;
};

std::optional<DtypeValue> ParseDtypeName(std::string_view s) {
  if (s.size() > 3 && s.size() <= 6 && s.substr(0, 3) == "int") {
    const std::string_view digits = s.substr(3);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return std::nullopt;
    }
    return DtypeValue{QuantDtype::kInt, std::stoi(std::string(digits))};
  }
  absl::StatusOr<QuantDtype> d = ParseQuantDtype(s);
  if (!d.ok()) return std::nullopt;
  return DtypeValue{*d, std::nullopt};
}

template <typename Json>
absl::StatusOr<DtypeValue> GetDtype(const Json& v, std::string_view key, std::string_view where,
                                    std::string_view expected) {
  RTNQ_ASSIGN_OR_RETURN(const std::string s, GetString(v, key, where));
  std::optional<DtypeValue> d = ParseDtypeName(s);
  if (!d) {
    return Error(where, absl::StrCat(std::string(key), " ", Quote(s), " is unknown (expected ",
                                     std::string(expected), ")"));
  }
  return *d;
}

template <typename Json>
absl::StatusOr<Scheme> GetScheme(const Json& v, std::string_view key, std::string_view where) {
  RTNQ_ASSIGN_OR_RETURN(const std::string s, GetString(v, key, where));
  absl::StatusOr<Scheme> scheme = ParseScheme(s);
  if (!scheme.ok()) {
    return Error(
        where, absl::StrCat(std::string(key), " ", Quote(s), " is unknown (expected sym or asym)"));
  }
  return *scheme;
}

// Several keys may fix the bit width (bits, num_bits, an "intN" dtype); they must agree.
absl::Status MergeBits(std::optional<int>& bits, std::string& bits_from, int value,
                       std::string from, std::string_view where) {
  if (bits && *bits != value) {
    return Error(where, absl::StrCat(bits_from, " and ", from, " disagree"));
  }
  bits = value;
  bits_from = std::move(from);
  return absl::OkStatus();
}

template <typename Json>
absl::StatusOr<QuantConfigPatch> PatchFromJsonImpl(const Json& obj, std::string_view where,
                                                   std::span<const std::string_view> skip_keys) {
  if (!obj.is_object()) {
    return Error(where, absl::StrCat("expected a JSON object, got ", Brief(obj)));
  }
  QuantConfigPatch p;
  std::optional<int> bits, dq_bits;
  std::string bits_from, dq_bits_from;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "bits" || key == "num_bits") {
      RTNQ_ASSIGN_OR_RETURN(const int b, GetInt(v, key, where));
      RTNQ_RETURN_IF_ERROR(MergeBits(bits, bits_from, b, absl::StrCat(key, " ", b), where));
    } else if (key == "group_size") {
      RTNQ_ASSIGN_OR_RETURN(p.group_size, GetInt64(v, key, where));
    } else if (key == "scheme") {
      RTNQ_ASSIGN_OR_RETURN(p.scheme, GetScheme(v, key, where));
    } else if (key == "quantile") {
      if (!v.is_number()) {
        return Error(where, absl::StrCat("quantile must be a number, got ", Brief(v)));
      }
      p.quantile = v.template get<double>();
    } else if (key == "dtype") {
      RTNQ_ASSIGN_OR_RETURN(
          const DtypeValue d,
          GetDtype(v, key, where, "int, int1..int8, nf4, fp4, fp4_e2m1_bnb, fp4_e2m1 or fp32"));
      p.dtype = d.dtype;
      if (d.bits) {
        RTNQ_RETURN_IF_ERROR(MergeBits(bits, bits_from, *d.bits,
                                       absl::StrCat("dtype ", Brief(v), " (bits ", *d.bits, ")"),
                                       where));
      }
    } else if (key == "enable_full_range") {
      RTNQ_ASSIGN_OR_RETURN(p.enable_full_range, GetBool(v, key, where));
    } else if (key == "enable_mse_search") {
      RTNQ_ASSIGN_OR_RETURN(p.enable_mse_search, GetBool(v, key, where));
    } else if (key == "group_dim") {
      RTNQ_ASSIGN_OR_RETURN(p.group_dim, GetInt(v, key, where));
    } else if (key == "double_quant_dtype") {
      RTNQ_ASSIGN_OR_RETURN(const DtypeValue d, GetDtype(v, key, where, "int, int1..int8 or fp32"));
      p.double_quant_dtype = d.dtype;
      if (d.bits) {
        RTNQ_RETURN_IF_ERROR(MergeBits(
            dq_bits, dq_bits_from, *d.bits,
            absl::StrCat("double_quant_dtype ", Brief(v), " (bits ", *d.bits, ")"), where));
      }
    } else if (key == "double_quant_bits") {
      RTNQ_ASSIGN_OR_RETURN(const int b, GetInt(v, key, where));
      RTNQ_RETURN_IF_ERROR(MergeBits(dq_bits, dq_bits_from, b, absl::StrCat(key, " ", b), where));
    } else if (key == "double_quant_scheme") {
      RTNQ_ASSIGN_OR_RETURN(p.double_quant_scheme, GetScheme(v, key, where));
    } else if (key == "double_quant_group_size") {
      RTNQ_ASSIGN_OR_RETURN(p.double_quant_group_size, GetInt64(v, key, where));
    } else if (key == "preset") {
      continue;  // applied below, before the explicit keys
    } else if (std::find(skip_keys.begin(), skip_keys.end(), key) == skip_keys.end()) {
      return UnknownKeyError(where, key, skip_keys);
    }
  }
  p.bits = bits;
  p.double_quant_bits = dq_bits;

  const auto preset_it = obj.find("preset");
  if (preset_it == obj.end()) return p;
  RTNQ_ASSIGN_OR_RETURN(const std::string name, GetString(*preset_it, "preset", where));
  absl::StatusOr<QuantConfigPatch> preset = PresetPatch(name);
  if (!preset.ok()) {
    return Error(where,
                 std::string(preset.status().message().data(), preset.status().message().size()));
  }
  QuantConfigPatch merged = *preset;
  // Explicit keys go on top of the preset, field by field.
  if (p.dtype) merged.dtype = p.dtype;
  if (p.bits) merged.bits = p.bits;
  if (p.group_size) merged.group_size = p.group_size;
  if (p.scheme) merged.scheme = p.scheme;
  if (p.quantile) merged.quantile = p.quantile;
  if (p.enable_full_range) merged.enable_full_range = p.enable_full_range;
  if (p.enable_mse_search) merged.enable_mse_search = p.enable_mse_search;
  if (p.group_dim) merged.group_dim = p.group_dim;
  if (p.double_quant_dtype) merged.double_quant_dtype = p.double_quant_dtype;
  if (p.double_quant_bits) merged.double_quant_bits = p.double_quant_bits;
  if (p.double_quant_scheme) merged.double_quant_scheme = p.double_quant_scheme;
  if (p.double_quant_group_size) merged.double_quant_group_size = p.double_quant_group_size;
  return merged;
}

template <typename Json>
absl::StatusOr<QuantConfigPatch> PatchFromJsonNoThrow(const Json& obj, std::string_view where,
                                                      std::span<const std::string_view> skip_keys) {
  try {
    return PatchFromJsonImpl(obj, where, skip_keys);
  } catch (const std::exception& e) {  // nlohmann throws; nothing may cross our boundary
    return absl::InternalError(absl::StrCat(std::string(where), ": ", e.what()));
  }
}

}  // namespace

absl::StatusOr<nlohmann::ordered_json> ParseStrictJson(std::string_view json_text,
                                                       std::string_view where, int max_depth) {
  absl::StatusOr<nlohmann::ordered_json> j = ParseJsonBounded(json_text, max_depth);
  if (!j.ok()) {
    return absl::Status(j.status().code(),
                        absl::StrCat(std::string(where), ": ", std::string(j.status().message())));
  }
  return j;
}

absl::StatusOr<QuantConfigPatch> PatchFromJson(const nlohmann::json& obj, std::string_view where,
                                               std::span<const std::string_view> skip_keys) {
  return PatchFromJsonNoThrow(obj, where, skip_keys);
}

absl::StatusOr<QuantConfigPatch> PatchFromJson(const nlohmann::ordered_json& obj,
                                               std::string_view where,
                                               std::span<const std::string_view> skip_keys) {
  return PatchFromJsonNoThrow(obj, where, skip_keys);
}

absl::StatusOr<QuantConfigPatch> ParseConfigPatchJson(std::string_view json_text,
                                                      std::string_view where) {
  RTNQ_ASSIGN_OR_RETURN(const nlohmann::ordered_json j, ParseStrictJson(json_text, where));
  return PatchFromJson(j, where);
}

nlohmann::ordered_json ConfigToJsonValue(const QuantConfig& cfg) {
  nlohmann::ordered_json j;
  j["bits"] = cfg.bits;
  j["group_size"] = cfg.group_size;
  j["scheme"] = SchemeName(cfg.scheme);
  j["quantile"] = cfg.quantile;
  j["dtype"] = QuantDtypeName(cfg.dtype);
  j["enable_full_range"] = cfg.enable_full_range;
  j["enable_mse_search"] = cfg.enable_mse_search;
  j["group_dim"] = cfg.group_dim;
  j["double_quant_dtype"] = QuantDtypeName(cfg.double_quant_dtype);
  j["double_quant_bits"] = cfg.double_quant_bits;
  j["double_quant_scheme"] = SchemeName(cfg.double_quant_scheme);
  j["double_quant_group_size"] = cfg.double_quant_group_size;
  return j;
}

std::string ConfigToJson(const QuantConfig& cfg) { return ConfigToJsonValue(cfg).dump(); }

}  // namespace rtnq
