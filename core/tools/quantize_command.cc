#include "core/tools/quantize_command.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_io.h"
#include "core/gptq_config.h"
#include "core/safetensors_writer.h"
#include "core/status_macros.h"
#include "core/tools/manifest.h"

namespace rtnq::local {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < (1u << 20)) return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  if (bytes < (1u << 30)) return absl::StrFormat("%.2f MiB", bytes / 1048576.0);
  return absl::StrFormat("%.2f GiB", bytes / 1073741824.0);
}

// One tensor of the output file: owned bytes (quantized) or a view into the input (copied).
struct OutTensor {
  TensorSpec spec;
  std::vector<uint8_t> owned;
  absl::Span<const uint8_t> view;
  absl::Span<const uint8_t> data() const { return owned.empty() ? view : absl::MakeSpan(owned); }
};

struct Planned {
  const TensorInfo* tensor = nullptr;
  TensorDecision decision;
  const TensorInfo* bias = nullptr;  // gptq: packed with the weight
};

// The output location is checked before any work, so a run that cannot write fails at once.
absl::Status CheckOutput(const QuantizeCommandOptions& o, bool dir_input) {
  if (o.output.empty()) return absl::InvalidArgumentError("no output path given (-o)");
  std::error_code ec;
  const bool exists = fs::exists(o.output, ec);
  if (exists && fs::equivalent(o.input, o.output, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("output ", o.output, " is the input; choose another path"));
  }
  if (dir_input) {
    if (exists && (!fs::is_directory(o.output, ec) || !fs::is_empty(o.output, ec))) {
      return absl::FailedPreconditionError(absl::StrCat(
          "output ", o.output, " must be a new or empty directory for a directory input"));
    }
  } else if (exists && fs::is_directory(o.output, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("output ", o.output, " is a directory; give a file path for a file input"));
  }
  return absl::OkStatus();
}

// config.json and the other small files of a checkpoint directory, as they will be written.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> PrepareSideFiles(
    const std::string& input_dir, OutputFormat format, const nlohmann::ordered_json& record) {
  std::vector<std::pair<std::string, std::string>> files;
  std::error_code ec;
  fs::directory_iterator it(input_dir, ec);
  if (ec) return ErrnoError(ec.value(), "list directory", input_dir);
  std::vector<fs::path> paths;
  for (const fs::directory_entry& e : it) {
    if (e.is_regular_file(ec)) paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  for (const fs::path& p : paths) {
    const std::string name = p.filename().string();
    if (absl::EndsWith(name, ".safetensors") || name == kShardIndexFileName) continue;
    if (format == OutputFormat::kGptq && name == "quantize_config.json") continue;
    ASSIGN_OR_RETURN(std::string contents, ReadFileToString(p.string()));
    if (name == "config.json") {
      nlohmann::ordered_json config = nlohmann::ordered_json::parse(contents, nullptr, false);
      if (config.is_discarded() || !config.is_object()) {
        return absl::InvalidArgumentError(
            absl::StrCat(p.string(), ": not a JSON object, cannot record the quantization"));
      }
      config[format == OutputFormat::kGptq ? "quantization_config" : "rtnq_quantization"] = record;
      contents = config.dump(2) + "\n";
    }
    files.emplace_back(name, std::move(contents));
  }
  // Without a config.json, fake/inc record the quantization only in the safetensors metadata.
  if (format == OutputFormat::kGptq) {
    files.emplace_back("quantize_config.json", record.dump(2) + "\n");
  }
  return files;
}

}  // namespace

absl::Status RunQuantize(const QuantizeCommandOptions& o, std::ostream& out) {
  const Clock::time_point start = Clock::now();
  ASSIGN_OR_RETURN(const WeightConfigResolver resolver, LoadSessionConfig(o.config_path, o.preset));
  ASSIGN_OR_RETURN(const std::unique_ptr<Engine> engine, Engine::Create(o.engine));
  ASSIGN_OR_RETURN(const InputCheckpoint in, OpenInput(o.input));
  RETURN_IF_ERROR(CheckOutput(o, in.is_dir));
  const bool gptq = o.format == OutputFormat::kGptq;

  // Plan every tensor first: a config or layout problem fails before minutes of work.
  std::vector<Planned> plan;
  std::set<std::string> packed_biases;
  bool any_asym = false;
  uint64_t bytes_before = 0;
  for (const TensorInfo* t : FileOrder(in.checkpoint)) {
    bytes_before += t->data.size();
    Planned p{t, DecideTensor(t->name, t->dtype, t->shape, resolver)};
    if (p.decision.action == TensorAction::kQuantize) {
      const QuantConfig& cfg = p.decision.resolved.config;
      if (gptq) {
        RETURN_IF_ERROR(CheckGptqCompatible(t->name, cfg, t->shape[0], t->shape[1]));
        p.bias = in.checkpoint.Find(LayerName(t->name) + ".bias");
        if (p.bias != nullptr) packed_biases.insert(p.bias->name);
      }
      any_asym |= cfg.scheme == Scheme::kAsym;
    }
    plan.push_back(std::move(p));
  }
  const GptqFormat gptq_format = o.gptq_format.value_or(DefaultGptqFormat(any_asym));

  Manifest manifest;
  manifest.format = o.format;
  manifest.gptq_format = gptq_format;
  std::vector<GptqLayerQuant> gptq_layers;
  std::vector<std::string> gptq_skipped;
  for (const Planned& p : plan) {
    const TensorInfo& t = *p.tensor;
    if (p.decision.action == TensorAction::kSkip) {
      manifest.skipped[t.name] = p.decision.reason;
      if (!p.decision.excluded_by_name) gptq_skipped.push_back(LayerName(t.name));
    }
    if (p.decision.action != TensorAction::kQuantize) continue;
    const QuantConfig& cfg = p.decision.resolved.config;
    manifest.tensors.push_back(ManifestTensor{t.name, LayerName(t.name), t.dtype, t.shape, cfg,
                                              DecidedByText(p.decision.resolved)});
    gptq_layers.push_back(GptqLayerQuant{LayerName(t.name), cfg.bits, cfg.group_size,
                                         cfg.scheme == Scheme::kSym, /*desc_act=*/false});
  }
  nlohmann::ordered_json record = ManifestToJson(manifest);
  if (gptq) {
    ASSIGN_OR_RETURN(record, GptqQuantizationConfig(
                                 GptqConfigFromLayers(gptq_layers, gptq_skipped, gptq_format)));
  }
  std::vector<std::pair<std::string, std::string>> side_files;
  if (in.is_dir) {
    ASSIGN_OR_RETURN(side_files, PrepareSideFiles(o.input, o.format, record));
  }

  out << absl::StrFormat(
      "quantize %s -> %s: %d tensors (%s), format %s%s, kernels %s, threads %d\n", o.input,
      o.output, plan.size(), HumanBytes(bytes_before), OutputFormatName(o.format),
      gptq ? absl::StrCat(" (checkpoint_format ", GptqFormatName(gptq_format), ")") : "",
      std::string(engine->kernels().name), engine->threads());
  size_t width = 8, cfg_width = 8, by_width = 8;  // column widths
  for (const Planned& p : plan) {
    width = std::max(width, p.tensor->name.size());
    if (p.decision.action != TensorAction::kQuantize) continue;
    cfg_width = std::max(cfg_width, ConfigSummary(p.decision.resolved.config).size());
    by_width = std::max(by_width, DecidedByText(p.decision.resolved).size());
  }
  width = std::min<size_t>(width, 56);

  std::vector<OutTensor> outs;
  int quantized = 0, skipped = 0, copied = 0;
  double snr_sum = 0, worst_snr = std::numeric_limits<double>::infinity();
  std::string worst_name;
  for (const Planned& p : plan) {
    const TensorInfo& t = *p.tensor;
    switch (p.decision.action) {
      case TensorAction::kCopy:
        if (packed_biases.count(t.name) != 0) break;  // written by PackGptq, as F16
        outs.push_back(OutTensor{{t.name, t.dtype, t.shape}, {}, t.data});
        ++copied;
        break;
      case TensorAction::kSkip:
        out << absl::StrFormat("  %-*s  skipped: %s\n", width, t.name, p.decision.reason);
        outs.push_back(OutTensor{{t.name, t.dtype, t.shape}, {}, t.data});
        ++skipped;
        break;
      case TensorAction::kQuantize: {
        const Clock::time_point t0 = Clock::now();
        ASSIGN_OR_RETURN(TensorOutputs r, QuantizeForOutput(t, p.decision.resolved.config, o.format,
                                                            gptq_format, p.bias, *engine));
        const double ms = SecondsSince(t0) * 1000;
        out << absl::StrFormat("  %-*s  %-*s  %-*s  SNR %6.2f dB  MSE %.3e  %7.1f ms\n", width,
                               t.name, cfg_width, ConfigSummary(p.decision.resolved.config),
                               by_width, DecidedByText(p.decision.resolved), r.metrics.snr_db,
                               r.metrics.mse, ms);
        for (PackedTensor& pt : r.tensors) {
          outs.push_back(OutTensor{{pt.name, pt.dtype, pt.shape}, std::move(pt.data), {}});
        }
        ++quantized;
        snr_sum += r.metrics.snr_db;
        if (r.metrics.snr_db < worst_snr || worst_name.empty()) {
          worst_snr = r.metrics.snr_db;
          worst_name = t.name;
        }
        break;
      }
    }
  }

  // Write: the safetensors file appears only when complete; side files after it.
  std::vector<TensorSpec> specs;
  uint64_t bytes_after = 0;
  for (const OutTensor& t : outs) {
    specs.push_back(t.spec);
    bytes_after += t.data().size();
  }
  std::error_code ec;
  const bool created_dir = in.is_dir && !fs::exists(o.output, ec);
  if (created_dir) {
    fs::create_directories(o.output, ec);
    if (ec) return ErrnoError(ec.value(), "create directory", o.output);
  }
  const std::string path = in.is_dir ? (fs::path(o.output) / kSingleFileName).string() : o.output;
  std::vector<std::string> written;
  auto fail = [&](absl::Status s) {
    for (const std::string& f : written) fs::remove(f, ec);
    if (created_dir) fs::remove(o.output, ec);
    return s;
  };
  {
    absl::StatusOr<SafetensorsWriter> writer = SafetensorsWriter::Create(
        path, specs,
        std::map<std::string, std::string>{{"format", "pt"},
                                           {kManifestKey, ManifestToJson(manifest).dump()}});
    if (!writer.ok()) return fail(writer.status());
    for (const OutTensor& t : outs) {
      if (absl::Status s = writer->WriteTensor(t.spec.name, t.data()); !s.ok()) return fail(s);
    }
    if (absl::Status s = writer->Finish(); !s.ok()) return fail(s);
    written.push_back(path);
  }
  for (const auto& [name, contents] : side_files) {
    const std::string p = (fs::path(o.output) / name).string();
    if (absl::Status s = WriteFileAtomically(p, contents); !s.ok()) return fail(s);
    written.push_back(p);
  }

  out << absl::StrFormat("quantized %d, skipped %d, copied %d unchanged\n", quantized, skipped,
                         copied);
  out << absl::StrFormat("size %s -> %s (%.2fx smaller)\n", HumanBytes(bytes_before),
                         HumanBytes(bytes_after),
                         bytes_after == 0 ? 0.0 : static_cast<double>(bytes_before) / bytes_after);
  if (quantized > 0) {
    out << absl::StrFormat("SNR mean %.2f dB, worst %.2f dB (%s)\n", snr_sum / quantized, worst_snr,
                           worst_name);
  }
  out << absl::StrFormat("wall %.2f s, kernels %s, threads %d\n", SecondsSince(start),
                         std::string(engine->kernels().name), engine->threads());
  out << "wrote " << path;
  if (written.size() > 1) {
    out << " (+";
    for (const auto& [name, contents] : side_files) out << " " << name;
    out << ")";
  }
  out << "\n";
  return absl::OkStatus();
}

}  // namespace rtnq::local
