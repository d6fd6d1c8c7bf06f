// The session config of a Quantize stream, converted from its proto form to core types, and the
// core -> proto conversions of configs.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/expert_layout.h"
#include "core/pack.h"
#include "core/quant_config.h"
#include "core/weight_config.h"
#include "rtnq/v1/rtnq.pb.h"

namespace rtnq::server {

/// Everything a stream's first message decides. Immutable once built; shared by its tensors.
struct Session {
  WeightConfigResolver resolver;
  v1::OutputForm output_form = v1::OUTPUT_FORM_FAKE_QUANT;
  GptqFormat gptq_format = GptqFormat::kV1;  ///< resolved (never "default")
  int compression_dim = 1;                   ///< PACKED_INC
  bool metrics_only = false;
  bool quantize_1d = false;
  bool pass_nonfinite = false;
  /// Stacked MoE expert tensors are split per expert in this layout; unset: they are refused.
  std::optional<ExpertLayout> expert_layout = std::nullopt;
};

/// Validates and converts a SessionConfig. InvalidArgument naming the field and the value for
/// unknown enum values, UNSPECIFIED set explicitly, unknown presets, config_json together with
/// default_config/weight_config, compression_dim other than 0/1, and every config error the core
/// reports (prefixed "config: " or "weight_config[\"KEY\"]: ").
absl::StatusOr<std::shared_ptr<const Session>> SessionFromProto(const v1::SessionConfig& proto);

/// One patch from its proto form; `where` prefixes errors (e.g. "default_config").
absl::StatusOr<QuantConfigPatch> PatchFromProto(const v1::QuantConfigPatch& proto,
                                                absl::string_view where);

/// The GPTQ format a session uses when the client leaves it at DEFAULT: v1 unless the default
/// config or a weight_config entry quantizes to int asym (the format is checkpoint-wide).
GptqFormat DefaultSessionGptqFormat(const WeightConfigResolver& resolver);

}  // namespace rtnq::server
