// `rtnq inspect FILE|DIR`: a checkpoint's tensors and any quantization it records (the rtnq
// manifest in __metadata__, config.json's quantization_config).
#include <filesystem>
#include <iostream>
#include <optional>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "client/checkpoint_util.h"
#include "client/cli/command.h"
#include "client/cli/flags.h"
#include "client/manifest.h"
#include "core/config/quant_config.h"
#include "core/config/strict_json.h"
#include "core/io/file_io.h"
#include "core/io/safetensors_header.h"
#include "core/layout/loader_rules.h"
#include "core/layout/output_plan.h"
#include "core/tensor_text.h"
#include "nlohmann/json.hpp"

namespace rtnq::client::cli {
namespace {

constexpr char kUsage[] = R"(rtnq inspect FILE|DIR [--json]
  Lists the tensors of a .safetensors file or checkpoint directory (name, dtype, shape, bytes),
  the totals and any quantization record: the rtnq manifest ("rtnq.quantization" metadata) and
  config.json's quantization_config. For a checkpoint rtnq wrote, also which engines load it
  (vLLM, transformers, ...), on which kernels, and why not when they do not.)";

// The loader rules' view of a checkpoint rtnq wrote: its quantized layers from the manifest, and
// the 2-D weights it left unquantized.
LoaderRulesInput LoaderInputOf(const Manifest& m, const ShardedCheckpoint& c) {
  LoaderRulesInput in;
  in.layout = OutputLayoutName(m.format);
  in.gptq_format = m.gptq_format;
  for (const ManifestTensor& t : m.tensors) {
    int64_t cols = 1;
    for (size_t i = 1; i < t.shape.size(); ++i) cols *= t.shape[i];
    in.layers.push_back({t.layer, t.config, t.shape.empty() ? 0 : t.shape[0], cols});
  }
  for (const auto& [name, why] : m.skipped) {
    const TensorInfo* t = c.Find(name);
    if (t != nullptr && t->shape.size() == 2) in.unquantized.push_back(LayerName(name));
  }
  return in;
}

nlohmann::ordered_json VerdictsToJson(const std::vector<EngineVerdict>& v) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const EngineVerdict& e : v) {
    out.push_back({{"engine", e.engine},
                   {"loads", e.loads},
                   {"kernel", e.kernel},
                   {"problems", e.problems},
                   {"notes", e.notes}});
  }
  return out;
}

void PrintVerdicts(const std::vector<EngineVerdict>& v) {
  std::cout << "loaders:\n";
  for (const EngineVerdict& e : v) {
    std::cout << absl::StrFormat(
        "  %-24s %s\n", e.engine,
        e.loads ? absl::StrCat("loads it: ", e.kernel) : "does not load it");
    for (const std::string& p : e.problems) std::cout << "      " << p << "\n";
    for (const std::string& n : e.notes) std::cout << "      note: " << n << "\n";
  }
}

// The rtnq manifest of the first shard that carries one; nullopt when none does. Parsing it
// checks it is one `verify` can use.
absl::StatusOr<std::optional<Manifest>> FindManifest(const ShardedCheckpoint& c) {
  for (const SafetensorsFile& shard : c.shards()) {
    auto it = shard.metadata().find(kManifestKey);
    if (it == shard.metadata().end()) continue;
    absl::StatusOr<Manifest> m = ManifestFromJson(it->second, shard.path());
    if (!m.ok()) return m.status();
    return std::optional<Manifest>(std::move(*m));
  }
  return std::nullopt;
}

// config.json's quantization_config next to a directory checkpoint; null when absent.
absl::StatusOr<nlohmann::ordered_json> FindConfigQuantization(const std::string& path) {
  const std::filesystem::path config = std::filesystem::path(path) / "config.json";
  if (!std::filesystem::is_directory(path) || !std::filesystem::exists(config)) {
    return nlohmann::ordered_json();
  }
  absl::StatusOr<std::string> text = ReadFileToString(config.string());
  if (!text.ok()) return text.status();
  // Bounded (the checkpoint may come from anyone): inspect prints what it parsed.
  absl::StatusOr<nlohmann::ordered_json> parsed = ParseJsonBounded(*text, kMaxJsonDepth);
  if (!parsed.ok() || !parsed->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(config.string(), ": not a JSON object",
                                                   parsed.ok() ? "" : ": ",
                                                   parsed.status().message()));
  }
  const nlohmann::ordered_json& j = *parsed;
  return j.contains("quantization_config") ? j["quantization_config"] : nlohmann::ordered_json();
}

int Run(const Command& self, const ParsedArgs& args) {
  if (args.positional.size() != 1) return UsageError(self, "inspect takes one FILE or DIR");
  const std::string& path = args.positional[0];
  absl::StatusOr<InputCheckpoint> input = OpenInput(path);
  if (!input.ok()) return Fail(input.status());
  absl::StatusOr<std::optional<Manifest>> manifest = FindManifest(input->checkpoint);
  if (!manifest.ok()) return Fail(manifest.status());
  absl::StatusOr<nlohmann::ordered_json> hf = FindConfigQuantization(path);
  if (!hf.ok()) return Fail(hf.status());

  nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
  uint64_t total = 0;
  size_t width = 0;
  for (const TensorInfo* t : FileOrder(input->checkpoint)) {
    tensors.push_back({{"name", t->name},
                       {"dtype", ElemTypeName(t->dtype)},
                       {"shape", t->shape},
                       {"bytes", t->data.size()}});
    total += t->data.size();
    width = std::max(width, t->name.size());
  }
  const size_t shards = input->checkpoint.shards().size();
  std::vector<EngineVerdict> verdicts;
  if (manifest->has_value()) verdicts = CheckLoaders(LoaderInputOf(**manifest, input->checkpoint));
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::ordered_json j = {
        {"path", path},
        {"shards", shards},
        {"tensors", tensors},
        {"total_bytes", total},
        {"rtnq_quantization",
         manifest->has_value() ? ManifestToJson(**manifest) : nlohmann::ordered_json()},
        {"quantization_config", *hf},
        {"loaders", VerdictsToJson(verdicts)}};
    std::cout << j.dump(2) << "\n";
    return kExitOk;
  }
  for (const auto& t : tensors) {
    std::cout << absl::StrFormat("  %-*s  %-4s  %-14s  %s\n", width, t["name"].get<std::string>(),
                                 t["dtype"].get<std::string>(),
                                 ShapeString(t["shape"].get<std::vector<int64_t>>()),
                                 HumanBytes(t["bytes"].get<uint64_t>()));
  }
  std::cout << absl::StrFormat("%d tensors, %s in %d shard(s)\n", tensors.size(), HumanBytes(total),
                               shards);
  if (manifest->has_value()) {
    const Manifest& m = **manifest;
    std::cout << absl::StrFormat("rtnq quantization: format %s, %d tensors quantized, %d skipped\n",
                                 OutputLayoutName(m.format), m.tensors.size(), m.skipped.size());
    for (const ManifestTensor& t : m.tensors) {
      std::cout << absl::StrFormat("  %-*s  %s  %s\n", width, t.name, ConfigSummary(t.config),
                                   t.decided_by);
    }
    for (const auto& [name, why] : m.skipped) {
      std::cout << absl::StrFormat("  %-*s  skipped: %s\n", width, name, why);
    }
    PrintVerdicts(verdicts);
  }
  if (!hf->is_null()) std::cout << "config.json quantization_config: " << hf->dump(2) << "\n";
  if (!manifest->has_value() && hf->is_null()) std::cout << "no quantization recorded\n";
  return kExitOk;
}

}  // namespace

const Command& InspectCommand() {
  static const Command* command =
      new Command{.name = "inspect",
                  .summary = "tensors and quantization record of a checkpoint",
                  .usage = kUsage,
                  .flags = {"json"},
                  .run = Run};
  return *command;
}

}  // namespace rtnq::client::cli
