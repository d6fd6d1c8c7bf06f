// The session config of a Quantize stream, converted from its proto form to core types, and the
// core -> proto conversions of configs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/config/quant_config.h"
#include "core/config/weight_config.h"
#include "core/expert_layout.h"
#include "core/layout/gptq.h"
#include "core/layout/output_plan.h"
#include "rtnq/v1/rtnq.pb.h"

namespace rtnq::server {

/// A v1::SessionConfig parsed and compiled: everything a stream's first message decides (not
/// client::Session, the client's stream interface). Immutable once built; shared by its tensors.
struct ParsedSession {
  WeightConfigResolver resolver;
  v1::OutputForm output_form = v1::OUTPUT_FORM_FAKE_QUANT;
  GptqFormat gptq_format = GptqFormat::kV1;  ///< resolved (never "default")
  int compression_dim = 1;                   ///< PACKED_INC
  bool metrics_only = false;
  bool quantize_1d = false;
  bool pass_nonfinite = false;
  /// Candidate configs measured on every tensor instead of the resolved config (metrics only).
  std::vector<QuantConfig> candidates = {};
  bool column_errors = false;  ///< candidates: per-column squared errors in TensorMetrics
  /// Stacked MoE expert tensors are split per expert in this layout; unset: they are refused.
  std::optional<ExpertLayout> expert_layout = std::nullopt;
};

/// True for the forms whose results are packed from all of a tensor's codes at its end
/// (PACKED_INC, PACKED_GPTQ, PACKED_COMPRESSED_TENSORS, PACKED_AWQ).
bool IsPackedForm(v1::OutputForm f);

/// The core layout a session's output form packs into (kFake for FAKE_QUANT and CODES), with the
/// session's compression_dim and GPTQ format.
OutputLayoutOptions LayoutOf(const ParsedSession& s);

/// Most candidate configs one session measures.
inline constexpr int kMaxCandidateConfigs = 64;

/// Validates and converts a SessionConfig. InvalidArgument naming the field and the value for
/// unknown enum values, UNSPECIFIED set explicitly, unknown presets, config_json together with
/// default_config/weight_config, compression_dim other than 0/1, candidate configs without
/// metrics_only, more than kMaxCandidateConfigs of them or one that is invalid or leaves tensors
/// unquantized, column_errors without candidates, and every config error the core reports
/// (prefixed "config: ", "weight_config[\"KEY\"]: " or "candidate_configs_json[I]: ").
absl::StatusOr<std::shared_ptr<const ParsedSession>> SessionFromProto(
    const v1::SessionConfig& proto);

/// One patch from its proto form; `where` prefixes errors (e.g. "default_config").
absl::StatusOr<QuantConfigPatch> PatchFromProto(const v1::QuantConfigPatch& proto,
                                                absl::string_view where);

/// The GPTQ format a session uses when the client leaves it at DEFAULT: v1 unless the default
/// config or a weight_config entry quantizes to int asym (the format is checkpoint-wide).
GptqFormat DefaultSessionGptqFormat(const WeightConfigResolver& resolver);

}  // namespace rtnq::server
