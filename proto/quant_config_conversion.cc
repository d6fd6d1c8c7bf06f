#include "proto/quant_config_conversion.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace rtnq {

absl::StatusOr<QuantDtype> QuantDtypeFromProto(int value, absl::string_view field) {
  switch (value) {
    case v1::QUANT_DTYPE_INT:
      return QuantDtype::kInt;
    case v1::QUANT_DTYPE_NF4:
      return QuantDtype::kNf4;
    case v1::QUANT_DTYPE_FP4:
      return QuantDtype::kFp4;
    case v1::QUANT_DTYPE_FP4_E2M1:
      return QuantDtype::kFp4E2M1;
    case v1::QUANT_DTYPE_FP32:
      return QuantDtype::kFp32;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ",
          v1::QuantDtype_IsValid(value) ? v1::QuantDtype_Name(value) : absl::StrCat(value),
          " is not a quantization dtype (INT, NF4, FP4, FP4_E2M1 or FP32)"));
  }
}

absl::StatusOr<Scheme> SchemeFromProto(int value, absl::string_view field) {
  switch (value) {
    case v1::SCHEME_SYM:
      return Scheme::kSym;
    case v1::SCHEME_ASYM:
      return Scheme::kAsym;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", v1::Scheme_IsValid(value) ? v1::Scheme_Name(value) : absl::StrCat(value),
          " is not a scheme (SYM or ASYM)"));
  }
}

absl::StatusOr<std::optional<ExpertLayout>> ExpertLayoutFromProto(int value,
                                                                  absl::string_view field) {
  switch (value) {
    case v1::EXPERT_LAYOUT_UNSPECIFIED:
      return std::nullopt;
    case v1::EXPERT_LAYOUT_OUT_IN:
      return ExpertLayout{false, false};
    case v1::EXPERT_LAYOUT_IN_OUT:
      return ExpertLayout{true, false};
    case v1::EXPERT_LAYOUT_OUT_IN_INTERLEAVED:
      return ExpertLayout{false, true};
    case v1::EXPERT_LAYOUT_IN_OUT_INTERLEAVED:
      return ExpertLayout{true, true};
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": ", value,
                       " is not an ExpertLayout (UNSPECIFIED, OUT_IN, IN_OUT, OUT_IN_INTERLEAVED "
                       "or IN_OUT_INTERLEAVED)"));
  }
}

v1::ExpertLayout ExpertLayoutToProto(std::optional<ExpertLayout> layout) {
  if (!layout.has_value()) return v1::EXPERT_LAYOUT_UNSPECIFIED;
  if (layout->transposed) {
    return layout->interleaved ? v1::EXPERT_LAYOUT_IN_OUT_INTERLEAVED : v1::EXPERT_LAYOUT_IN_OUT;
  }
  return layout->interleaved ? v1::EXPERT_LAYOUT_OUT_IN_INTERLEAVED : v1::EXPERT_LAYOUT_OUT_IN;
}

namespace {

// Each layout and the output form asking for it, the one table both directions read.
constexpr std::pair<OutputLayout, v1::OutputForm> kLayoutForms[] = {
    {OutputLayout::kFake, v1::OUTPUT_FORM_FAKE_QUANT},
    {OutputLayout::kInc, v1::OUTPUT_FORM_PACKED_INC},
    {OutputLayout::kGptq, v1::OUTPUT_FORM_PACKED_GPTQ},
    {OutputLayout::kCompressedTensors, v1::OUTPUT_FORM_PACKED_COMPRESSED_TENSORS},
    {OutputLayout::kAwq, v1::OUTPUT_FORM_PACKED_AWQ},
};

}  // namespace

OutputLayout OutputLayoutFromProto(v1::OutputForm form) {
  for (const auto& [layout, f] : kLayoutForms) {
    if (f == form) return layout;
  }
  return OutputLayout::kFake;  // OUTPUT_FORM_CODES: unpacked codes
}

v1::OutputForm OutputLayoutToProto(OutputLayout l) {
  for (const auto& [layout, form] : kLayoutForms) {
    if (layout == l) return form;
  }
  return v1::OUTPUT_FORM_FAKE_QUANT;
}

v1::QuantDtype QuantDtypeToProto(QuantDtype d) {
  switch (d) {
    case QuantDtype::kInt:
      return v1::QUANT_DTYPE_INT;
    case QuantDtype::kNf4:
      return v1::QUANT_DTYPE_NF4;
    case QuantDtype::kFp4:
      return v1::QUANT_DTYPE_FP4;
    case QuantDtype::kFp4E2M1:
      return v1::QUANT_DTYPE_FP4_E2M1;
    case QuantDtype::kFp32:
      return v1::QUANT_DTYPE_FP32;
  }
  return v1::QUANT_DTYPE_UNSPECIFIED;
}

v1::Scheme SchemeToProto(Scheme s) { return s == Scheme::kSym ? v1::SCHEME_SYM : v1::SCHEME_ASYM; }

void ConfigToProto(const QuantConfig& c, v1::QuantConfig* p) {
  p->set_dtype(QuantDtypeToProto(c.dtype));
  p->set_bits(c.bits);
  p->set_group_size(c.group_size);
  p->set_scheme(SchemeToProto(c.scheme));
  p->set_quantile(c.quantile);
  p->set_enable_full_range(c.enable_full_range);
  p->set_enable_mse_search(c.enable_mse_search);
  p->set_group_dim(c.group_dim);
  p->set_double_quant_dtype(QuantDtypeToProto(c.double_quant_dtype));
  p->set_double_quant_bits(c.double_quant_bits);
  p->set_double_quant_scheme(SchemeToProto(c.double_quant_scheme));
  p->set_double_quant_group_size(c.double_quant_group_size);
}

absl::StatusOr<QuantConfig> ConfigFromProto(const v1::QuantConfig& p, absl::string_view where) {
  QuantConfig c;
  RTNQ_ASSIGN_OR_RETURN(c.dtype, QuantDtypeFromProto(p.dtype(), absl::StrCat(where, ".dtype")));
  c.bits = p.bits();
  c.group_size = p.group_size();
  RTNQ_ASSIGN_OR_RETURN(c.scheme, SchemeFromProto(p.scheme(), absl::StrCat(where, ".scheme")));
  c.quantile = p.quantile();
  c.enable_full_range = p.enable_full_range();
  c.enable_mse_search = p.enable_mse_search();
  c.group_dim = p.group_dim();
  RTNQ_ASSIGN_OR_RETURN(
      c.double_quant_dtype,
      QuantDtypeFromProto(p.double_quant_dtype(), absl::StrCat(where, ".double_quant_dtype")));
  c.double_quant_bits = p.double_quant_bits();
  RTNQ_ASSIGN_OR_RETURN(
      c.double_quant_scheme,
      SchemeFromProto(p.double_quant_scheme(), absl::StrCat(where, ".double_quant_scheme")));
  c.double_quant_group_size = p.double_quant_group_size();
  return c;
}

}  // namespace rtnq
