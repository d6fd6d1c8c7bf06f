// Quantization configs and output layouts between their wire form (rtnq.v1) and the core's, shared
// by the server (requests in, resolved configs out) and the client (resolved configs back in), so
// both ends agree on every enum value and error message.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/quant_config.h"
#include "core/expert_layout.h"
#include "core/layout/output_layout.h"
#include "rtnq/v1/rtnq.pb.h"

namespace rtnq {

/// A wire enum value (possibly unknown to this build) as the core's. InvalidArgument
/// "<field>: <NAME or number> is not a ..." for UNSPECIFIED and unknown values.
absl::StatusOr<QuantDtype> QuantDtypeFromProto(int value, absl::string_view field);
absl::StatusOr<Scheme> SchemeFromProto(int value, absl::string_view field);

/// UNSPECIFIED -> nullopt (stacked experts are not split); unknown values are InvalidArgument
/// naming `field`.
absl::StatusOr<std::optional<ExpertLayout>> ExpertLayoutFromProto(int value,
                                                                  absl::string_view field);
v1::ExpertLayout ExpertLayoutToProto(std::optional<ExpertLayout> layout);

/// The layout a session's output form packs into: kFake for FAKE_QUANT and CODES (codes are not
/// packed) and for values a session refuses (SessionFromProto checks them first).
OutputLayout OutputLayoutFromProto(v1::OutputForm form);
/// The output form asking for layout `l` (kFake: FAKE_QUANT).
v1::OutputForm OutputLayoutToProto(OutputLayout l);

v1::QuantDtype QuantDtypeToProto(QuantDtype d);
v1::Scheme SchemeToProto(Scheme s);

/// A full core config as its proto message, and back; `where` prefixes field names in errors
/// (e.g. "result.config").
void ConfigToProto(const QuantConfig& config, v1::QuantConfig* proto);
absl::StatusOr<QuantConfig> ConfigFromProto(const v1::QuantConfig& proto, absl::string_view where);

}  // namespace rtnq
