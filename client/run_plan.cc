#include "client/run_plan.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "core/gptq_config.h"
#include "core/layout/awq_config.h"
#include "core/layout/compressed_tensors_config.h"
#include "core/output_plan.h"
#include "core/status_macros.h"
#include "core/strict_json.h"

#ifndef RTNQ_VERSION
#define RTNQ_VERSION "dev"
#endif

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

}  // namespace

absl::StatusOr<RunPlan> PlanTensors(const std::vector<const TensorInfo*>& tensors,
                                    const WeightConfigResolver& resolver,
                                    const TensorSelection& selection, const PlanOptions& options) {
  RunPlan plan;
  const bool gptq = options.format == OutputFormat::kGptq;
  // Decide every tensor first: the GPTQ zero-point format depends on all of them.
  bool any_asym = false;
  for (const TensorInfo* t : tensors) {
    PlannedTensor p;
    p.tensor = t;
    ASSIGN_OR_RETURN(p.decision, selection.Decide(t->name, t->dtype, t->shape, resolver));
    if (p.decision.action == TensorAction::kQuantize) {
      any_asym |= p.decision.resolved.config.scheme == Scheme::kAsym;
    }
    plan.bytes_before += static_cast<uint64_t>(t->num_elements) * ElemSize(t->dtype);
    plan.tensors.push_back(std::move(p));
  }
  plan.gptq_format = options.gptq_format.value_or(DefaultGptqFormat(any_asym));
  OutputLayoutOptions layout;
  layout.layout = LayoutOf(options.format);
  layout.compression_dim = options.compression_dim;
  layout.gptq_format = plan.gptq_format;
  plan.manifest.format = options.format;
  plan.manifest.compression_dim = options.compression_dim;
  plan.manifest.gptq_format = plan.gptq_format;
  std::set<std::string> quantized_layers;
  LoaderRulesInput rules;
  rules.layout = OutputFormatName(options.format);
  rules.gptq_format = plan.gptq_format;
  std::vector<GptqLayerQuant> gptq_layers;
  std::vector<std::string> gptq_skipped;
  for (PlannedTensor& p : plan.tensors) {
    const TensorInfo& t = *p.tensor;
    switch (p.decision.action) {
      case TensorAction::kQuantize: {
        const QuantConfig& cfg = p.decision.resolved.config;
        ASSIGN_OR_RETURN(p.outputs, PlanQuantizedOutputs(t.name, t.dtype, t.shape, cfg, layout));
        const std::string layer = LayerName(t.name);
        quantized_layers.insert(layer);
        plan.manifest.tensors.push_back(ManifestTensor{t.name, layer, t.dtype, t.shape, cfg,
                                                       DecidedByText(p.decision.resolved)});
        gptq_layers.push_back(
            GptqLayerQuant{layer, cfg.bits, cfg.group_size, cfg.scheme == Scheme::kSym, false});
        rules.layers.push_back({layer, cfg, t.shape[0], Cols(t.shape)});
        break;
      }
      case TensorAction::kSkip:
        plan.manifest.skipped[t.name] = p.decision.reason;
        if (t.shape.size() == 2) rules.unquantized.push_back(LayerName(t.name));
        if (!p.decision.excluded_by_rule) gptq_skipped.push_back(LayerName(t.name));
        [[fallthrough]];
      case TensorAction::kCopy:
        p.outputs = {TensorSpec{t.name, t.dtype, t.shape}};
        break;
    }
  }
  // GPTQ and AWQ loaders read a quantized layer's bias as float16.
  if (HalfBias(options.format)) {
    for (PlannedTensor& p : plan.tensors) {
      const TensorInfo& t = *p.tensor;
      if (p.decision.action == TensorAction::kQuantize || !absl::EndsWith(t.name, ".bias") ||
          t.dtype == ElemType::kF16 || !IsQuantizableFloat(t.dtype)) {
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

  ASSIGN_OR_RETURN(plan.warnings,
                   ApplyLoaderTarget(CheckLoaders(rules), options.target, rules.layout));

  plan.record = ManifestToJson(plan.manifest);
  plan.metadata = {{"format", "pt"}, {kManifestKey, plan.record.dump()}};
  if (gptq) {
    GptqCheckpointConfig cfg = GptqConfigFromLayers(gptq_layers, gptq_skipped, plan.gptq_format);
    cfg.producer = "rtnq:" RTNQ_VERSION;
    ASSIGN_OR_RETURN(plan.record, GptqQuantizationConfig(cfg));
  } else if (options.format == OutputFormat::kCompressedTensors) {
    ASSIGN_OR_RETURN(plan.record,
                     CompressedTensorsQuantizationConfig(rules.layers, rules.unquantized));
  } else if (options.format == OutputFormat::kAwq) {
    ASSIGN_OR_RETURN(plan.record, AwqQuantizationConfig(rules.layers, rules.unquantized));
  }
  return plan;
}

absl::StatusOr<RunPlan> PlanRun(const InputCheckpoint& input, const std::string& input_path,
                                const WeightConfigResolver& resolver,
                                const TensorSelection& selection, const PlanOptions& options) {
  ASSIGN_OR_RETURN(RunPlan plan,
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
  config[RecordKey(plan)] = plan.record;
  return WriteFileAtomically(dest, config.dump(2) + "\n");
}

// GPTQ loaders (AutoGPTQ, GPTQModel) read quantize_config.json next to config.json.
absl::StatusOr<std::string> WriteQuantizeConfig(const std::string& out_dir, const RunPlan& plan) {
  RETURN_IF_ERROR(WriteFileAtomically((fs::path(out_dir) / "quantize_config.json").string(),
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
  RETURN_IF_ERROR(
      WriteConfigJson((fs::path(out_dir) / "config.json").string(), std::move(config), plan));
  std::vector<std::string> written = {"config.json"};
  if (plan.manifest.format == OutputFormat::kGptq) {
    ASSIGN_OR_RETURN(std::string name, WriteQuantizeConfig(out_dir, plan));
    written.push_back(std::move(name));
  }
  return written;
}

absl::StatusOr<std::vector<std::string>> WriteSideFiles(const std::string& input_dir,
                                                        const std::string& out_dir,
                                                        const RunPlan& plan) {
  const bool gptq = plan.manifest.format == OutputFormat::kGptq;
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
      ASSIGN_OR_RETURN(const std::string text, ReadFileToString(p.string()));
      absl::StatusOr<nlohmann::ordered_json> parsed = ParseJsonBounded(text, kMaxJsonDepth);
      if (!parsed.ok() || !parsed->is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(p.string(), ": not a JSON object, cannot record the quantization"));
      }
      RETURN_IF_ERROR(WriteConfigJson(dest, *std::move(parsed), plan));
    } else {
      fs::copy_file(p, dest, fs::copy_options::overwrite_existing, ec);
      if (ec) return ErrnoError(ec.value(), absl::StrCat("copy ", p.string(), " to"), dest);
    }
    written.push_back(name);
  }
  if (gptq) {
    ASSIGN_OR_RETURN(std::string name, WriteQuantizeConfig(out_dir, plan));
    written.push_back(std::move(name));
  }
  return written;
}

}  // namespace rtnq::client
