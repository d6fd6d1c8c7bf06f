#include "client/run_plan.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/expert_plan.h"
#include "client/fp8_input.h"
#include "core/config/strict_json.h"
#include "core/io/file_io.h"
#include "core/layout/awq_config.h"
#include "core/layout/compressed_tensors_config.h"
#include "core/layout/gptq_config.h"
#include "core/layout/output_plan.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"
#include "rtnq/version.h"  // RTNQ_VERSION, generated from project(VERSION)

namespace rtnq::client {
namespace {

namespace fs = std::filesystem;

uint64_t SpecBytes(const TensorSpec& s) {
  uint64_t n = 1;
  for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
  return n * ElemSize(s.dtype);
}

// Columns of the 2-D view a weight is quantized as.
int64_t Cols(const std::vector<int64_t>& shape) {
  int64_t cols = 1;
  for (size_t i = 1; i < shape.size(); ++i) cols *= shape[i];
  return cols;
}

// Output file names: a directory keeps its shards' names (same split), a file its output name.
std::vector<std::string> OutputFileNames(const InputCheckpoint& input,
                                         const std::string& output_name) {
  if (!input.is_dir) return {output_name};
  std::vector<std::string> names;
  for (const SafetensorsFile& shard : input.checkpoint.shards()) {
    names.push_back(fs::path(shard.path()).filename().string());
  }
  return names;
}

// The experts of one MoE layer must share one config (client/expert_plan.h).
absl::Status CheckExperts(const RunPlan& plan, const WeightConfigResolver& resolver) {
  std::vector<ExpertMember> members;
  for (const PlannedTensor& p : plan.tensors) {
    const TensorAction a = p.decision.action;
    if (a != TensorAction::kQuantize && a != TensorAction::kSkip) continue;
    members.push_back(ExpertMember{p.tensor->name, a == TensorAction::kQuantize, p.decision.reason,
                                   p.decision.resolved, &p.experts});
  }
  return CheckExpertGroups(members, resolver);
}

// Packed formats store experts as per-expert modules, so a stacked tensor's bias
// ("P.experts.gate_up_proj_bias" [E, F]) is split the way its weight was: one bias per expert
// weight, "P.experts.{i}.gate_proj.bias" (F16 for GPTQ, like every GPTQ bias).
absl::Status PlanExpertBiases(RunPlan& plan, OutputLayout layout) {
  if (layout == OutputLayout::kFake) return absl::OkStatus();
  std::map<std::string, const PlannedTensor*> stacked;
  for (const PlannedTensor& p : plan.tensors) {
    if (!p.experts.empty()) stacked[p.tensor->name] = &p;
  }
  for (PlannedTensor& p : plan.tensors) {
    const TensorInfo& t = *p.tensor;
    const std::string owner = StackedBiasOwner(t.name, t.shape);
    const auto it = stacked.find(owner);
    if (owner.empty() || it == stacked.end() || p.decision.action != TensorAction::kCopy) continue;
    const PlannedTensor& w = *it->second;
    const int64_t fused = plan.expert_layout->transposed ? w.tensor->shape[2] : w.tensor->shape[1];
    if (t.shape[0] != w.tensor->shape[0] || t.shape[1] != fused || !IsQuantizableFloat(p.dtype)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor \"", t.name, "\" ", ElemTypeName(p.dtype), " ", ShapeString(t.shape),
          " is the bias of stacked experts \"", owner, "\" ", ShapeString(w.tensor->shape),
          " but not a float [", w.tensor->shape[0], ", ", fused, "] tensor to split per expert"));
    }
    p.bias_experts = w.experts;
    p.decision.reason = absl::StrCat("split into ", w.experts.size(),
                                     " per-expert biases like its weight \"", owner, "\"");
    const ElemType dtype = HalfBias(plan.manifest.format) ? ElemType::kF16 : p.dtype;
    p.outputs.clear();
    for (const ExpertSlice& e : w.experts) p.outputs.push_back({e.layer + ".bias", dtype, {e.out}});
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RunPlan> PlanTensors(const std::vector<const TensorInfo*>& tensors,
                                    const WeightConfigResolver& resolver,
                                    const TensorSelection& selection, const PlanOptions& options) {
  RunPlan plan;
  const bool gptq = options.format == OutputLayout::kGptq;
  // Decide every tensor first: the GPTQ zero-point format depends on all of them.
  RTNQ_ASSIGN_OR_RETURN(const Fp8SourcePlan fp8, PlanInputFp8(tensors, options.input_config));
  plan.fp8_source = !fp8.empty();
  const ExpertContext experts = MakeExpertContext(options.expert_layout, options.input_config);
  plan.expert_layout = experts.layout;
  std::vector<QuantConfig> quantized_configs;  // decide the GPTQ format
  for (const TensorInfo* t : tensors) {
    PlannedTensor p;
    p.tensor = t;
    p.dtype = t->dtype;
    if (auto it = fp8.weights.find(t->name); it != fp8.weights.end()) {
      p.fp8 = it->second;
      p.dtype = ElemType::kF32;
    }
    if (auto it = fp8.consumed.find(t->name); it != fp8.consumed.end()) {
      p.decision.action = TensorAction::kConsume;
      p.decision.reason = it->second;
      plan.bytes_before += static_cast<uint64_t>(t->num_elements) * ElemSize(t->dtype);
      plan.tensors.push_back(std::move(p));
      continue;
    }
    const bool stacked = IsStackedExperts(t->name, t->shape);
    RTNQ_ASSIGN_OR_RETURN(p.decision,
                          selection.Decide(t->name, p.dtype, t->shape, resolver, stacked));
    if (stacked && p.decision.action == TensorAction::kQuantize) {
      RTNQ_ASSIGN_OR_RETURN(p.experts, PlanStackedExperts(t->name, t->shape, experts));
      p.decision.reason = absl::StrCat(
          t->shape[0], " experts quantized one by one as ", p.experts.size(), " weights (",
          ExpertLayoutName(*experts.layout), " from ", experts.source, ")");
    }
    if (p.fp8.has_value() && p.decision.action != TensorAction::kQuantize) {
      p.decision.reason = absl::StrCat(p.decision.reason, "; ", Fp8SourceNote(*t, *p.fp8));
    }
    if (p.decision.action == TensorAction::kQuantize) {
      quantized_configs.push_back(p.decision.resolved.config);
    }
    plan.bytes_before += static_cast<uint64_t>(t->num_elements) * ElemSize(t->dtype);
    plan.tensors.push_back(std::move(p));
  }
  plan.gptq_format = options.gptq_format.value_or(DefaultGptqFormat(quantized_configs));
  RTNQ_RETURN_IF_ERROR(CheckExperts(plan, resolver));

  OutputLayoutOptions layout;
  layout.layout = options.format;
  layout.compression_dim = options.compression_dim;
  layout.gptq_format = plan.gptq_format;
  plan.manifest.format = options.format;
  plan.manifest.compression_dim = options.compression_dim;
  plan.manifest.gptq_format = plan.gptq_format;
  std::set<std::string> quantized_layers;
  LoaderRulesInput rules;
  rules.layout = OutputLayoutName(options.format);
  rules.gptq_format = plan.gptq_format;
  std::vector<GptqLayerQuant> gptq_layers;
  std::vector<std::string> gptq_skipped;
  for (PlannedTensor& p : plan.tensors) {
    const TensorInfo& t = *p.tensor;
    switch (p.decision.action) {
      case TensorAction::kQuantize: {
        const QuantConfig& cfg = p.decision.resolved.config;
        const std::string layer = LayerName(t.name);
        plan.manifest.tensors.push_back(ManifestTensor{t.name, layer, p.dtype, t.shape, cfg,
                                                       DecidedByText(p.decision.resolved)});
        // Linear layers as loaders see them: the tensor, or each expert's weight of a stack.
        std::vector<std::pair<std::string, std::vector<int64_t>>> weights = {{layer, t.shape}};
        if (!p.experts.empty()) {
          plan.manifest.tensors.back().expert_layout = ExpertLayoutName(*plan.expert_layout);
          weights.clear();
          for (const ExpertSlice& e : p.experts) weights.push_back({e.layer, {e.out, e.in}});
        }
        const bool fake_stack = !p.experts.empty() && layout.layout == OutputLayout::kFake;
        if (fake_stack) p.outputs = {{t.name, p.dtype, t.shape}};  // the original layout
        for (const auto& [w, shape] : weights) {
          if (!fake_stack) {
            const std::string name = p.experts.empty() ? t.name : w + ".weight";
            RTNQ_ASSIGN_OR_RETURN(std::vector<TensorSpec> specs,
                                  PlanQuantizedOutputs(name, p.dtype, shape, cfg, layout));
            p.outputs.insert(p.outputs.end(), specs.begin(), specs.end());
          }
          quantized_layers.insert(w);
          gptq_layers.push_back(
              GptqLayerQuant{w, cfg.bits, cfg.group_size, cfg.scheme == Scheme::kSym, false});
          rules.layers.push_back({w, cfg, shape[0], Cols(shape)});
        }
        break;
      }
      case TensorAction::kSkip:
        plan.manifest.skipped[t.name] = p.decision.reason;
        if (t.shape.size() == 2) rules.unquantized.push_back(LayerName(t.name));
        if (!p.decision.excluded_by_rule) gptq_skipped.push_back(LayerName(t.name));
        [[fallthrough]];
      case TensorAction::kCopy:
        p.outputs = {TensorSpec{t.name, p.dtype, t.shape}};
        break;
      case TensorAction::kConsume:
        plan.manifest.skipped[t.name] = p.decision.reason;
        break;
    }
  }
  RTNQ_RETURN_IF_ERROR(PlanExpertBiases(plan, layout.layout));
  // GPTQ and AWQ loaders read a quantized layer's bias as float16.
  if (HalfBias(options.format)) {
    for (PlannedTensor& p : plan.tensors) {
      const TensorInfo& t = *p.tensor;
      if (p.decision.action == TensorAction::kQuantize ||
          p.decision.action == TensorAction::kConsume || !p.bias_experts.empty() ||
          !absl::EndsWith(t.name, ".bias") || t.dtype == ElemType::kF16 ||
          !IsQuantizableFloat(t.dtype)) {
        continue;
      }
      const std::string layer = t.name.substr(0, t.name.size() - 5);
      if (quantized_layers.count(layer) == 0) continue;
      p.bias_to_f16 = true;
      p.outputs[0].dtype = ElemType::kF16;
    }
  }
  for (const PlannedTensor& p : plan.tensors) {
    for (const TensorSpec& s : p.outputs) plan.bytes_after += SpecBytes(s);
  }

  RTNQ_ASSIGN_OR_RETURN(plan.warnings,
                        ApplyLoaderTarget(CheckLoaders(rules), options.target, rules.layout));

  plan.record = ManifestToJson(plan.manifest);
  plan.metadata = {{"format", "pt"}, {kManifestKey, plan.record.dump()}};
  if (gptq) {
    GptqCheckpointConfig cfg = GptqConfigFromLayers(gptq_layers, gptq_skipped, plan.gptq_format);
    cfg.producer = "rtnq:" RTNQ_VERSION;
    RTNQ_ASSIGN_OR_RETURN(plan.record, GptqQuantizationConfig(cfg));
  } else if (options.format == OutputLayout::kCompressedTensors) {
    RTNQ_ASSIGN_OR_RETURN(plan.record,
                          CompressedTensorsQuantizationConfig(rules.layers, rules.unquantized));
  } else if (options.format == OutputLayout::kAwq) {
    RTNQ_ASSIGN_OR_RETURN(plan.record, AwqQuantizationConfig(rules.layers, rules.unquantized));
  }
  return plan;
}

absl::StatusOr<RunPlan> PlanRun(const InputCheckpoint& input, const std::string& input_path,
                                const WeightConfigResolver& resolver,
                                const TensorSelection& selection, const PlanOptions& options) {
  RTNQ_ASSIGN_OR_RETURN(RunPlan plan,
                        PlanTensors(FileOrder(input.checkpoint), resolver, selection, options));
  std::error_code ec;
  plan.write_index = input.is_dir && fs::exists(fs::path(input_path) / kShardIndexFileName, ec);
  for (const std::string& name : OutputFileNames(input, options.output_name)) {
    plan.files.push_back(PlannedFile{name, {}});
  }
  std::map<const SafetensorsFile*, int> file_of;
  for (size_t i = 0; i < input.checkpoint.shards().size(); ++i) {
    file_of[&input.checkpoint.shards()[i]] = static_cast<int>(i);
  }
  for (PlannedTensor& p : plan.tensors) {
    p.file = file_of.at(input.checkpoint.ShardOf(p.tensor->name));
    for (const TensorSpec& s : p.outputs) plan.files[p.file].specs.push_back(s);
  }
  return plan;
}

const char* RecordKey(const RunPlan& plan) {
  return HasHfQuantizationConfig(plan.manifest.format) ? "quantization_config"
                                                       : "rtnq_quantization";
}

namespace {

absl::Status WriteConfigJson(const std::string& dest, nlohmann::ordered_json config,
                             const RunPlan& plan) {
  // An FP8 source's quantization_config would make loaders read the re-quantized weights as FP8.
  if (plan.fp8_source) config.erase("quantization_config");
  config[RecordKey(plan)] = plan.record;
  return WriteFileAtomically(dest, config.dump(2) + "\n");
}

// GPTQ loaders (AutoGPTQ, GPTQModel) read quantize_config.json next to config.json.
absl::StatusOr<std::string> WriteQuantizeConfig(const std::string& out_dir, const RunPlan& plan) {
  RTNQ_RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir) / "quantize_config.json").string(),
                                           plan.record.dump(2) + "\n"));
  return std::string("quantize_config.json");
}

}  // namespace

absl::StatusOr<std::vector<std::string>> WriteRecordFiles(const std::string& out_dir,
                                                          const RunPlan& plan,
                                                          nlohmann::ordered_json config) {
  if (!config.is_object()) {
    return absl::InvalidArgumentError("config must be a JSON object to record the quantization");
  }
  RTNQ_RETURN_IF_ERROR(
      WriteConfigJson((fs::path(out_dir) / "config.json").string(), std::move(config), plan));
  std::vector<std::string> written = {"config.json"};
  if (plan.manifest.format == OutputLayout::kGptq) {
    RTNQ_ASSIGN_OR_RETURN(std::string name, WriteQuantizeConfig(out_dir, plan));
    written.push_back(std::move(name));
  }
  return written;
}

absl::StatusOr<std::vector<std::string>> WriteSideFiles(const std::string& input_dir,
                                                        const std::string& out_dir,
                                                        const RunPlan& plan) {
  const bool gptq = plan.manifest.format == OutputLayout::kGptq;
  std::error_code ec;
  fs::directory_iterator it(input_dir, ec);
  if (ec) return ErrnoError(ec.value(), "list directory", input_dir);
  std::vector<fs::path> paths;
  for (const fs::directory_entry& e : it) {
    if (e.is_regular_file(ec)) paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> written;
  for (const fs::path& p : paths) {
    const std::string name = p.filename().string();
    if (absl::EndsWith(name, ".safetensors") || name == kShardIndexFileName) continue;
    if (gptq && name == "quantize_config.json") continue;
    const std::string dest = (fs::path(out_dir) / name).string();
    if (name == "config.json") {
      RTNQ_ASSIGN_OR_RETURN(const std::string text, ReadFileToString(p.string()));
      absl::StatusOr<nlohmann::ordered_json> parsed = ParseJsonBounded(text, kMaxJsonDepth);
      if (!parsed.ok() || !parsed->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(p.string(), ": not a JSON object, cannot record the quantization"));
      }
      RTNQ_RETURN_IF_ERROR(WriteConfigJson(dest, *std::move(parsed), plan));
    } else {
      fs::copy_file(p, dest, fs::copy_options::overwrite_existing, ec);
      if (ec) return ErrnoError(ec.value(), absl::StrCat("copy ", p.string(), " to"), dest);
    }
    written.push_back(name);
  }
  if (gptq) {
    RTNQ_ASSIGN_OR_RETURN(std::string name, WriteQuantizeConfig(out_dir, plan));
    written.push_back(std::move(name));
  }
  return written;
}

}  // namespace rtnq::client
