#include "server/session.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "proto/quant_config_conversion.h"

namespace rtnq::server {
namespace {

absl::StatusOr<std::unique_ptr<WeightConfigResolver>> ResolverFromFields(
    const v1::SessionConfig& proto) {
  QuantConfig default_config;
  RTNQ_ASSIGN_OR_RETURN(const QuantConfigPatch default_patch,
                        PatchFromProto(proto.default_config(), "default_config"));
  default_patch.ApplyTo(default_config);
  std::vector<WeightConfigEntry> entries;
  for (int i = 0; i < proto.weight_config_size(); ++i) {
    const v1::WeightConfigEntry& e = proto.weight_config(i);
    RTNQ_ASSIGN_OR_RETURN(
        QuantConfigPatch patch,
        PatchFromProto(e.patch(), absl::StrCat("weight_config[\"", e.key(), "\"]")));
    entries.push_back(WeightConfigEntry{e.key(), std::move(patch)});
  }
  RTNQ_ASSIGN_OR_RETURN(WeightConfigResolver resolver,
                        WeightConfigResolver::Create(default_config, std::move(entries)));
  return std::make_unique<WeightConfigResolver>(std::move(resolver));
}

// rtnq plan's candidate configs: whole configs (patches on the contract's defaults) that each
// quantize, measured on tensors in metrics-only sessions.
absl::StatusOr<std::vector<QuantConfig>> CandidatesFromProto(const v1::SessionConfig& proto) {
  const int n = proto.candidate_configs_json_size();
  if (n == 0) {
    if (proto.column_errors()) {
      return absl::InvalidArgumentError("column_errors needs candidate_configs_json");
    }
    return std::vector<QuantConfig>{};
  }
  if (!proto.metrics_only()) {
    return absl::InvalidArgumentError("candidate_configs_json needs metrics_only");
  }
  if (n > kMaxCandidateConfigs) {
    return absl::InvalidArgumentError(
        absl::StrCat("candidate_configs_json: ", n, " candidates, at most ", kMaxCandidateConfigs));
  }
  std::vector<QuantConfig> out;
  for (int i = 0; i < n; ++i) {
    const std::string where = absl::StrCat("candidate_configs_json[", i, "]");
    RTNQ_ASSIGN_OR_RETURN(const QuantConfigPatch patch,
                          ParseConfigPatchJson(proto.candidate_configs_json(i), where));
    QuantConfig c;
    patch.ApplyTo(c);
    if (absl::Status st = ValidateConfig(c); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", st.message()));
    }
    if (c.dtype == QuantDtype::kFp32) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": dtype fp32 quantizes nothing, there is nothing to measure"));
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

absl::StatusOr<QuantConfigPatch> PatchFromProto(const v1::QuantConfigPatch& proto,
                                                absl::string_view where) {
  QuantConfigPatch p;
  if (proto.has_preset()) {
    auto preset = PresetPatch(proto.preset());
    if (!preset.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".preset: \"", proto.preset(),
                                                     "\" is not a preset (BNB_NF4 or "
                                                     "GGML_TYPE_Q4_K)"));
    }
    p = *std::move(preset);
  }
  if (proto.has_dtype()) {
    RTNQ_ASSIGN_OR_RETURN(p.dtype,
                          QuantDtypeFromProto(proto.dtype(), absl::StrCat(where, ".dtype")));
  }
  if (proto.has_bits()) p.bits = proto.bits();
  if (proto.has_group_size()) p.group_size = proto.group_size();
  if (proto.has_scheme()) {
    RTNQ_ASSIGN_OR_RETURN(p.scheme,
                          SchemeFromProto(proto.scheme(), absl::StrCat(where, ".scheme")));
  }
  if (proto.has_quantile()) p.quantile = proto.quantile();
  if (proto.has_enable_full_range()) p.enable_full_range = proto.enable_full_range();
  if (proto.has_enable_mse_search()) p.enable_mse_search = proto.enable_mse_search();
  if (proto.has_group_dim()) p.group_dim = proto.group_dim();
  if (proto.has_double_quant_dtype()) {
    RTNQ_ASSIGN_OR_RETURN(p.double_quant_dtype,
                          QuantDtypeFromProto(proto.double_quant_dtype(),
                                              absl::StrCat(where, ".double_quant_dtype")));
  }
  if (proto.has_double_quant_bits()) p.double_quant_bits = proto.double_quant_bits();
  if (proto.has_double_quant_scheme()) {
    RTNQ_ASSIGN_OR_RETURN(
        p.double_quant_scheme,
        SchemeFromProto(proto.double_quant_scheme(), absl::StrCat(where, ".double_quant_scheme")));
  }
  if (proto.has_double_quant_group_size()) {
    p.double_quant_group_size = proto.double_quant_group_size();
  }
  return p;
}

GptqFormat DefaultSessionGptqFormat(const WeightConfigResolver& resolver) {
  std::vector<QuantConfig> configs = {resolver.default_config()};
  for (const WeightConfigEntry& e : resolver.entries()) {
    e.patch.ApplyTo(configs.emplace_back(resolver.default_config()));
  }
  return DefaultGptqFormat(configs);
}

absl::StatusOr<std::shared_ptr<const ParsedSession>> SessionFromProto(
    const v1::SessionConfig& proto) {
  std::unique_ptr<WeightConfigResolver> resolver;
  if (!proto.config_json().empty()) {
    if (proto.has_default_config() || proto.weight_config_size() > 0) {
      return absl::InvalidArgumentError(
          "session config: config_json and default_config/weight_config are alternatives; set "
          "one");
    }
    RTNQ_ASSIGN_OR_RETURN(WeightConfigResolver r, ParseSessionConfigJson(proto.config_json()));
    resolver = std::make_unique<WeightConfigResolver>(std::move(r));
  } else {
    RTNQ_ASSIGN_OR_RETURN(resolver, ResolverFromFields(proto));
  }
  if (!v1::OutputForm_IsValid(proto.output_form())) {
    return absl::InvalidArgumentError(
        absl::StrCat("output_form: ", proto.output_form(),
                     " is not an OutputForm (FAKE_QUANT, CODES, PACKED_INC or PACKED_GPTQ)"));
  }
  GptqFormat gptq = DefaultSessionGptqFormat(*resolver);
  switch (proto.gptq_format()) {
    case v1::GPTQ_FORMAT_DEFAULT:
      break;
    case v1::GPTQ_FORMAT_V1:
      gptq = GptqFormat::kV1;
      break;
    case v1::GPTQ_FORMAT_V2:
      gptq = GptqFormat::kV2;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("gptq_format: ", proto.gptq_format(),
                                                     " is not a GptqFormat (DEFAULT, V1 or V2)"));
  }
  const int compression_dim = proto.has_compression_dim() ? proto.compression_dim() : 1;
  if (compression_dim != 0 && compression_dim != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("compression_dim: ", compression_dim, " is not 0 or 1"));
  }
  RTNQ_ASSIGN_OR_RETURN(std::vector<QuantConfig> candidates, CandidatesFromProto(proto));
  RTNQ_ASSIGN_OR_RETURN(const std::optional<ExpertLayout> expert_layout,
                        ExpertLayoutFromProto(proto.expert_layout(), "expert_layout"));
  auto session = std::make_shared<ParsedSession>(ParsedSession{std::move(*resolver)});
  session->candidates = std::move(candidates);
  session->column_errors = proto.column_errors();
  session->expert_layout = expert_layout;
  session->output_form = proto.output_form();
  session->gptq_format = gptq;
  session->compression_dim = compression_dim;
  session->metrics_only = proto.metrics_only();
  session->quantize_1d = proto.quantize_1d();
  session->pass_nonfinite = proto.pass_nonfinite();
  return std::shared_ptr<const ParsedSession>(std::move(session));
}

bool IsPackedForm(v1::OutputForm f) { return OutputLayoutFromProto(f) != OutputLayout::kFake; }

OutputLayoutOptions LayoutOf(const ParsedSession& s) {
  return {OutputLayoutFromProto(s.output_form), s.compression_dim, s.gptq_format};
}

}  // namespace rtnq::server
