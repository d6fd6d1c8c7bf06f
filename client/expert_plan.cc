#include "client/expert_plan.h"

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/tensor_selection.h"
#include "core/io/safetensors_header.h"
#include "core/layout/fused_groups.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

constexpr char kBiasSuffix[] = "_bias";

std::string MemberText(const ExpertMember& m) {
  if (!m.quantized)
    return absl::StrCat("tensor \"", m.name, "\" is not quantized (", m.reason, ")");
  return absl::StrCat("tensor \"", m.name, "\" is quantized ", ConfigSummary(m.resolved.config),
                      " (", DecidedByText(m.resolved), ")");
}

}  // namespace

ExpertContext MakeExpertContext(std::optional<ExpertLayout> flag,
                                const nlohmann::ordered_json& config) {
  ExpertContext c;
  c.hidden_size = HiddenSizeFromConfig(config);
  if (config.is_object() && config.contains("model_type") && config["model_type"].is_string()) {
    c.model_type = config["model_type"].get<std::string>();
  }
  if (flag.has_value()) {
    c.layout = flag;
    c.source = "--expert-layout";
  } else if (std::optional<ExpertLayout> l = ExpertLayoutFromConfig(config); l.has_value()) {
    c.layout = l;
    c.source = absl::StrCat("config.json model_type \"", c.model_type, "\"");
  }
  return c;
}

bool IsStackedExperts(std::string_view name, const std::vector<int64_t>& shape) {
  return shape.size() == 3 && StackedExpertsOf(name).has_value();
}

absl::StatusOr<std::vector<ExpertSlice>> PlanStackedExperts(std::string_view name,
                                                            const std::vector<int64_t>& shape,
                                                            const ExpertContext& context) {
  if (!context.layout.has_value()) {
    const std::string why = context.model_type.empty()
                                ? "there is no config.json model_type to take it from"
                                : absl::StrCat("config.json model_type \"", context.model_type,
                                               "\" is not a MoE family rtnq knows");
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor \"", std::string(name), "\" ", ShapeString(shape),
        " holds stacked MoE experts in an unknown layout (", why,
        "): give --expert-layout out-in ([E, out, in], gate/up halves: transformers >= 5), "
        "in-out ([E, in, out]: Llama-4), in-out-interleaved (GPT-OSS) or out-in-interleaved"));
  }
  absl::StatusOr<std::vector<ExpertSlice>> slices =
      PlanExpertSlices(name, shape, *context.layout, context.hidden_size);
  if (!slices.ok()) {
    return absl::Status(slices.status().code(),
                        absl::StrCat(slices.status().message(), "; layout from ", context.source));
  }
  return slices;
}

std::string StackedBiasOwner(std::string_view name, const std::vector<int64_t>& shape) {
  if (shape.size() != 2 || !name.ends_with(kBiasSuffix)) return "";
  const std::string owner(name.substr(0, name.size() - (sizeof(kBiasSuffix) - 1)));
  return StackedExpertsOf(owner).has_value() ? owner : "";
}

absl::Status CheckExpertGroups(const std::vector<ExpertMember>& members,
                               const WeightConfigResolver& resolver) {
  std::map<std::string, const ExpertMember*> first;  // group -> its first member
  for (const ExpertMember& m : members) {
    const std::optional<FusedGroup> g = FusedGroupOf(m.name);
    if (!g.has_value() || g->kind != "experts") continue;
    if (m.quantized && m.slices != nullptr) {
      for (const ExpertSlice& s : *m.slices) {
        RTNQ_ASSIGN_OR_RETURN(const ResolvedConfig r, resolver.Resolve(s.layer + ".weight"));
        if (!r.decided_by.empty() && r.decided_by != m.resolved.decided_by &&
            r.config != m.resolved.config) {
          return absl::InvalidArgumentError(absl::StrCat(
              "weight_config entry \"", r.decided_by, "\" gives ", s.layer, " (expert ", s.expert,
              " of tensor \"", m.name, "\") ", ConfigSummary(r.config), ", but ", MemberText(m),
              ": the experts of MoE layer \"", g->name,
              "\" are one fused module in inference engines and must share one config"));
        }
      }
    }
    const auto [it, inserted] = first.emplace(g->name, &m);
    if (inserted) continue;
    const ExpertMember& a = *it->second;
    if (a.quantized != m.quantized || (m.quantized && a.resolved.config != m.resolved.config)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the experts of MoE layer \"", g->name,
                       "\" must share one config (inference engines load them as one fused "
                       "module), but ",
                       MemberText(a), " and ", MemberText(m)));
    }
  }
  return absl::OkStatus();
}

}  // namespace rtnq::client
