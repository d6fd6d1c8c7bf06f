#include "client/remote/proto_config.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace rtnq::client {
namespace {

absl::StatusOr<QuantDtype> DtypeFromProto(v1::QuantDtype d, const char* field) {
  switch (d) {
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
      return absl::InvalidArgumentError(
          absl::StrCat("server sent unknown ", field, " ", static_cast<int>(d)));
  }
}

absl::StatusOr<Scheme> SchemeFromProto(v1::Scheme s, const char* field) {
  switch (s) {
    case v1::SCHEME_SYM:
      return Scheme::kSym;
    case v1::SCHEME_ASYM:
      return Scheme::kAsym;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("server sent unknown ", field, " ", static_cast<int>(s)));
  }
}

}  // namespace

absl::StatusOr<QuantConfig> FromProtoConfig(const v1::QuantConfig& p) {
  QuantConfig c;
  ASSIGN_OR_RETURN(c.dtype, DtypeFromProto(p.dtype(), "dtype"));
  c.bits = p.bits();
  c.group_size = p.group_size();
  ASSIGN_OR_RETURN(c.scheme, SchemeFromProto(p.scheme(), "scheme"));
  c.quantile = p.quantile();
  c.enable_full_range = p.enable_full_range();
  c.enable_mse_search = p.enable_mse_search();
  c.group_dim = p.group_dim();
  ASSIGN_OR_RETURN(c.double_quant_dtype,
                   DtypeFromProto(p.double_quant_dtype(), "double_quant_dtype"));
  c.double_quant_bits = p.double_quant_bits();
  ASSIGN_OR_RETURN(c.double_quant_scheme,
                   SchemeFromProto(p.double_quant_scheme(), "double_quant_scheme"));
  c.double_quant_group_size = p.double_quant_group_size();
  return c;
}

}  // namespace rtnq::client
