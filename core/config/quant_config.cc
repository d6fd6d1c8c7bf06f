#include "core/config/quant_config.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace rtnq {

void QuantConfigPatch::ApplyTo(QuantConfig& cfg) const {
  if (dtype) cfg.dtype = *dtype;
  if (bits) cfg.bits = *bits;
  if (group_size) cfg.group_size = *group_size;
  if (scheme) cfg.scheme = *scheme;
  if (quantile) cfg.quantile = *quantile;
  if (enable_full_range) cfg.enable_full_range = *enable_full_range;
  if (enable_mse_search) cfg.enable_mse_search = *enable_mse_search;
  if (group_dim) cfg.group_dim = *group_dim;
  if (double_quant_dtype) cfg.double_quant_dtype = *double_quant_dtype;
  if (double_quant_bits) cfg.double_quant_bits = *double_quant_bits;
  if (double_quant_scheme) cfg.double_quant_scheme = *double_quant_scheme;
  if (double_quant_group_size) cfg.double_quant_group_size = *double_quant_group_size;
}

bool QuantConfigPatch::empty() const {
  return !dtype && !bits && !group_size && !scheme && !quantile && !enable_full_range &&
         !enable_mse_search && !group_dim && !double_quant_dtype && !double_quant_bits &&
         !double_quant_scheme && !double_quant_group_size;
}

absl::Status ValidateConfig(const QuantConfig& cfg) {
  // Enum values outside the declared ones can only come from a cast; the name tables below would
  // index past their end, so reject them first.
  if (static_cast<unsigned>(cfg.dtype) > static_cast<unsigned>(QuantDtype::kFp32)) {
    return absl::InvalidArgumentError(
        absl::StrCat("dtype ", static_cast<int>(cfg.dtype), " is unknown"));
  }
  if (static_cast<unsigned>(cfg.double_quant_dtype) > static_cast<unsigned>(QuantDtype::kFp32)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "double_quant_dtype ", static_cast<int>(cfg.double_quant_dtype), " is unknown"));
  }
  if (cfg.scheme != Scheme::kSym && cfg.scheme != Scheme::kAsym) {
    return absl::InvalidArgumentError(
        absl::StrCat("scheme ", static_cast<int>(cfg.scheme), " is unknown"));
  }
  if (cfg.double_quant_scheme != Scheme::kSym && cfg.double_quant_scheme != Scheme::kAsym) {
    return absl::InvalidArgumentError(absl::StrCat(
        "double_quant_scheme ", static_cast<int>(cfg.double_quant_scheme), " is unknown"));
  }
  if (cfg.dtype == QuantDtype::kFp32) return absl::OkStatus();  // unquantized: nothing applies
  if (cfg.is_float4()) {
    if (cfg.bits != 4) {
      return absl::InvalidArgumentError(
          absl::StrCat("bits must be 4 for dtype ", QuantDtypeName(cfg.dtype), ", got ", cfg.bits));
    }
  } else if (cfg.bits < 1 || cfg.bits > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("bits must be in 1..8 for dtype int, got ", cfg.bits));
  }
  if (cfg.group_size == 0 || cfg.group_size < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_size must be -1 or >= 1, got ", cfg.group_size));
  }
  if (!(cfg.quantile > 0.0 && cfg.quantile <= 1.0)) {  // also rejects NaN
    return absl::InvalidArgumentError(
        absl::StrCat("quantile must be in (0, 1], got ", cfg.quantile));
  }
  if (static_cast<float>(cfg.quantile) == 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantile ", cfg.quantile, " rounds to 0 in float32"));
  }
  if (cfg.group_dim != 0 && cfg.group_dim != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_dim must be 0 or 1, got ", cfg.group_dim));
  }
  if (cfg.dtype == QuantDtype::kInt && cfg.scheme == Scheme::kSym && cfg.enable_full_range &&
      cfg.bits == 1) {
    return absl::InvalidArgumentError(
        "enable_full_range is not possible with bits 1 and scheme sym (the reference divides by "
        "zero and yields NaN)");
  }
  if (cfg.double_quant_dtype != QuantDtype::kFp32) {
    if (cfg.double_quant_dtype != QuantDtype::kInt) {
      return absl::InvalidArgumentError(absl::StrCat("double_quant_dtype must be int or fp32, got ",
                                                     QuantDtypeName(cfg.double_quant_dtype)));
    }
    if (cfg.double_quant_bits < 1 || cfg.double_quant_bits > 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("double_quant_bits must be in 1..8, got ", cfg.double_quant_bits));
    }
    if (cfg.double_quant_group_size == 0 || cfg.double_quant_group_size < -1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "double_quant_group_size must be -1 or >= 1, got ", cfg.double_quant_group_size));
    }
  }
  return absl::OkStatus();
}

const std::string& QuantDtypeName(QuantDtype d) {
  static const std::string kNames[] = {"int", "nf4", "fp4", "fp4_e2m1", "fp32"};
  return kNames[static_cast<int>(d)];
}

absl::StatusOr<QuantDtype> ParseQuantDtype(std::string_view s) {
  if (s == "int") return QuantDtype::kInt;
  if (s == "nf4") return QuantDtype::kNf4;
  if (s == "fp4" || s == "fp4_e2m1_bnb") return QuantDtype::kFp4;
  if (s == "fp4_e2m1") return QuantDtype::kFp4E2M1;
  if (s == "fp32") return QuantDtype::kFp32;
  return absl::InvalidArgumentError(
      absl::StrCat("dtype \"", std::string(s),
                   "\" is unknown (expected int, nf4, fp4, fp4_e2m1_bnb, fp4_e2m1 or fp32)"));
}

const std::string& SchemeName(Scheme s) {
  static const std::string kSym = "sym", kAsym = "asym";
  return s == Scheme::kSym ? kSym : kAsym;
}

absl::StatusOr<Scheme> ParseScheme(std::string_view s) {
  if (s == "sym") return Scheme::kSym;
  if (s == "asym") return Scheme::kAsym;
  return absl::InvalidArgumentError(
      absl::StrCat("scheme \"", std::string(s), "\" is unknown (expected sym or asym)"));
}

absl::StatusOr<QuantConfigPatch> PresetPatch(std::string_view name) {
  const std::string upper = absl::AsciiStrToUpper(std::string(name));
  QuantConfigPatch p;
  if (upper == "BNB_NF4") {
    p.dtype = QuantDtype::kNf4;
    p.bits = 4;
    p.group_size = 32;
    p.double_quant_dtype = QuantDtype::kInt;
    p.double_quant_bits = 8;
    p.double_quant_scheme = Scheme::kAsym;
    p.double_quant_group_size = 256;
    return p;
  }
  if (upper == "GGML_TYPE_Q4_K") {
    p.dtype = QuantDtype::kInt;
    p.bits = 4;
    p.group_size = 32;
    p.scheme = Scheme::kAsym;
    p.double_quant_dtype = QuantDtype::kInt;
    p.double_quant_bits = 6;
    p.double_quant_scheme = Scheme::kSym;
    p.double_quant_group_size = 8;
    return p;
  }
  return absl::NotFoundError(absl::StrCat("preset \"", std::string(name),
                                          "\" is unknown (expected BNB_NF4 or GGML_TYPE_Q4_K)"));
}

std::string ConfigSummary(const QuantConfig& cfg) {
  if (cfg.dtype == QuantDtype::kFp32) return "fp32 (unquantized)";
  std::string s = cfg.dtype == QuantDtype::kInt
                      ? absl::StrCat("int", cfg.bits, " ", SchemeName(cfg.scheme))
                      : std::string(QuantDtypeName(cfg.dtype));
  absl::StrAppend(&s, cfg.group_size == -1 ? " per-channel" : absl::StrCat(" g", cfg.group_size));
  if (cfg.group_dim == 0) absl::StrAppend(&s, " group_dim0");
  if (cfg.enable_full_range) absl::StrAppend(&s, " full-range");
  if (cfg.quantile != 1.0) absl::StrAppend(&s, " q", cfg.quantile);
  if (cfg.enable_mse_search) absl::StrAppend(&s, " mse");
  if (cfg.double_quant()) {
    absl::StrAppend(&s, " dq(int", cfg.double_quant_bits, " ", SchemeName(cfg.double_quant_scheme),
                    " g", cfg.double_quant_group_size, ")");
  }
  return s;
}

}  // namespace rtnq
