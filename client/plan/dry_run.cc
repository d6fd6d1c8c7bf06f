#include "client/plan/dry_run.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/checkpoint_util.h"
#include "client/plan/predict.h"
#include "client/tensor_selection.h"
#include "core/config/config_json.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

using Json = nlohmann::ordered_json;

std::string ActionText(TensorAction a) {
  switch (a) {
    case TensorAction::kQuantize:
      return "quantize";
    case TensorAction::kSkip:
      return "skip";
    case TensorAction::kConsume:
      return "consume";
    case TensorAction::kCopy:
      break;
  }
  return "copy";
}

}  // namespace

absl::StatusOr<DryRun> DryRunQuantize(const QuantizeRunOptions& options) {
  DryRun run;
  RTNQ_ASSIGN_OR_RETURN(run.input, OpenInput(options.input, ShardAccess::kHeaderOnly));
  RTNQ_ASSIGN_OR_RETURN(const WeightConfigResolver resolver,
                        ParseSessionConfigJson(options.config_json));
  RTNQ_ASSIGN_OR_RETURN(const TensorSelection selection,
                        TensorSelection::Create(options.include, options.exclude));
  std::string output = options.output;
  while (output.size() > 1 && output.back() == '/') output.pop_back();
  PlanOptions po;
  po.output_name =
      std::filesystem::path(output.empty() ? options.input : output).filename().string();
  po.format = options.format;
  po.gptq_format = options.gptq_format;
  po.compression_dim = options.compression_dim;
  RTNQ_ASSIGN_OR_RETURN(run.plan, PlanRun(run.input, options.input, resolver, selection, po));
  RTNQ_ASSIGN_OR_RETURN(run.files, PredictFileSizes(run.plan));
  for (const auto& f : run.files) run.total_bytes += f.second;
  return run;
}

std::string DryRunText(const QuantizeRunOptions& options, const DryRun& run) {
  std::string out = absl::StrFormat(
      "dry run: %s -> %s, format %s%s (no tensor data read)\n", options.input,
      options.output.empty() ? "-" : options.output, OutputLayoutName(options.format),
      options.format == OutputLayout::kGptq
          ? absl::StrCat(" (checkpoint_format ", GptqFormatName(run.plan.gptq_format), ")")
          : "");
  int counts[3] = {0, 0, 0};
  for (const PlannedTensor& p : run.plan.tensors) {
    const TensorInfo& t = *p.tensor;
    ++counts[static_cast<int>(p.decision.action)];
    absl::StrAppendFormat(&out, "%-8s %s %s %s", ActionText(p.decision.action), t.name,
                          ElemTypeName(t.dtype), ShapeString(t.shape));
    if (p.decision.action == TensorAction::kQuantize) {
      absl::StrAppendFormat(&out, ": %s (%s)\n", ConfigSummary(p.decision.resolved.config),
                            DecidedByText(p.decision.resolved));
    } else {
      absl::StrAppendFormat(&out, ": %s\n",
                            p.decision.reason.empty() ? "as is" : p.decision.reason);
    }
    if (p.decision.action == TensorAction::kQuantize || p.bias_to_f16) {
      for (const TensorSpec& s : p.outputs) {
        absl::StrAppendFormat(&out, "           -> %s %s %s %d bytes\n", s.name,
                              ElemTypeName(s.dtype), ShapeString(s.shape), SpecsBytes({s}));
      }
    }
  }
  absl::StrAppendFormat(&out, "tensors: %d quantized, %d skipped, %d copied\n", counts[0],
                        counts[1], counts[2]);
  for (const auto& [name, bytes] : run.files) {
    absl::StrAppendFormat(&out, "file %s: %d bytes (%s)\n", name, bytes, HumanBytes(bytes));
  }
  absl::StrAppendFormat(&out, "output: %d bytes (%s) from %d input tensor bytes (%s)\n",
                        run.total_bytes, HumanBytes(run.total_bytes), run.plan.bytes_before,
                        HumanBytes(run.plan.bytes_before));
  return out;
}

Json DryRunJson(const QuantizeRunOptions& options, const DryRun& run) {
  Json tensors = Json::array();
  for (const PlannedTensor& p : run.plan.tensors) {
    Json outputs = Json::array();
    for (const TensorSpec& s : p.outputs) {
      outputs.push_back({{"name", s.name},
                         {"dtype", ElemTypeName(s.dtype)},
                         {"shape", s.shape},
                         {"bytes", SpecsBytes({s})}});
    }
    Json t = {{"name", p.tensor->name},
              {"dtype", ElemTypeName(p.tensor->dtype)},
              {"shape", p.tensor->shape},
              {"action", ActionText(p.decision.action)},
              {"outputs", outputs}};
    if (p.decision.action == TensorAction::kQuantize) {
      t["config"] = ConfigToJsonValue(p.decision.resolved.config);
      t["decided_by"] = DecidedByText(p.decision.resolved);
    } else {
      t["reason"] = p.decision.reason;
    }
    tensors.push_back(std::move(t));
  }
  Json files = Json::array();
  for (const auto& [name, bytes] : run.files) files.push_back({{"name", name}, {"bytes", bytes}});
  Json summary = {{"input", options.input},
                  {"output", options.output},
                  {"format", OutputLayoutName(options.format)},
                  {"bytes_before", run.plan.bytes_before},
                  {"bytes_after", run.total_bytes}};
  if (options.format == OutputLayout::kGptq) {
    summary["gptq_format"] = GptqFormatName(run.plan.gptq_format);
  }
  return {{"summary", summary}, {"tensors", tensors}, {"files", files}};
}

}  // namespace rtnq::client
