#include "core/gptq_config.h"

#include <algorithm>
#include <optional>
#include <set>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/layout/quantized_layer.h"

namespace rtnq {
namespace {

using Key = std::tuple<int, int64_t, bool, bool>;

Key KeyOf(const GptqLayerQuant& l) { return {l.bits, l.group_size, l.sym, l.desc_act}; }

// A Python `re` pattern matching exactly `name`.
std::string ExactPattern(const std::string& name) {
  std::string out = "^";
  for (char ch : name) {
    if (std::string_view(".^$*+?()[]{}|\\").find(ch) != std::string_view::npos) out += '\\';
    out += ch;
  }
  return out + "$";
}

// The part of a module name after its block index ("model.layers.3.mlp.up" -> "mlp.up"); nullopt
// for names outside repeated blocks.
std::optional<std::string> InBlockName(const std::string& name) {
  size_t start = 0;
  while (start < name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string::npos) return std::nullopt;  // a trailing index names no module
    const std::string_view part(name.data() + start, end - start);
    if (!part.empty() && std::all_of(part.begin(), part.end(), absl::ascii_isdigit)) {
      return name.substr(end + 1);
    }
    start = end + 1;
  }
  return std::nullopt;
}

bool IsLmHead(const std::string& name) {
  return name == "lm_head" ||
         (name.size() > 8 && name.compare(name.size() - 8, 8, ".lm_head") == 0);
}

absl::Status CheckBitsAndGroup(int bits, int64_t group_size, const std::string& where) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": GPTQ bits must be 2, 3, 4 or 8, got ", bits));
  }
  if (group_size == 0 || group_size < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": group_size must be > 0 or -1, got ", group_size));
  }
  return absl::OkStatus();
}

}  // namespace

GptqCheckpointConfig GptqConfigFromLayers(std::vector<GptqLayerQuant> layers,
                                          std::vector<std::string> skipped_layers,
                                          GptqFormat format) {
  GptqCheckpointConfig cfg;
  cfg.format = format;
  std::vector<std::pair<Key, int>> counts;  // first-seen order decides ties
  for (const GptqLayerQuant& l : layers) {
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& c) { return c.first == KeyOf(l); });
    if (it == counts.end()) {
      counts.emplace_back(KeyOf(l), 1);
    } else {
      ++it->second;
    }
  }
  if (!counts.empty()) {
    auto best = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    std::tie(cfg.bits, cfg.group_size, cfg.sym, cfg.desc_act) = best->first;
  }
  cfg.layers = std::move(layers);
  cfg.skipped_layers = std::move(skipped_layers);
  return cfg;
}

absl::StatusOr<nlohmann::ordered_json> GptqQuantizationConfig(const GptqCheckpointConfig& cfg) {
  if (absl::Status s = CheckBitsAndGroup(cfg.bits, cfg.group_size, "quantization_config");
      !s.ok()) {
    return s;
  }
  if (!(cfg.damp_percent > 0.0 && cfg.damp_percent < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization_config: damp_percent must be in (0, 1), got ", cfg.damp_percent));
  }
  std::vector<std::string> names;
  for (const GptqLayerQuant& l : cfg.layers) {
    if (absl::Status s = CheckBitsAndGroup(l.bits, l.group_size, absl::StrCat("layer ", l.name));
        !s.ok()) {
      return s;
    }
    names.push_back(l.name);
  }
  if (absl::Status s = CheckLayersListedOnce(names, cfg.skipped_layers); !s.ok()) return s;

  nlohmann::ordered_json j;
  j["quant_method"] = "gptq";
  j["bits"] = cfg.bits;
  j["group_size"] = cfg.group_size;
  j["sym"] = cfg.sym;
  j["desc_act"] = cfg.desc_act;
  j["checkpoint_format"] = GptqFormatName(cfg.format);
  j["damp_percent"] = cfg.damp_percent;
  j["true_sequential"] = cfg.true_sequential;
  j["lm_head"] = std::any_of(cfg.layers.begin(), cfg.layers.end(),
                             [](const GptqLayerQuant& l) { return IsLmHead(l.name); });

  const GptqLayerQuant global{"", cfg.bits, cfg.group_size, cfg.sym, cfg.desc_act};
  nlohmann::ordered_json dynamic = nlohmann::ordered_json::object();
  for (const GptqLayerQuant& l : cfg.layers) {
    if (KeyOf(l) == KeyOf(global)) continue;
    dynamic["+:" + ExactPattern(l.name)] = {
        {"bits", l.bits}, {"group_size", l.group_size}, {"sym", l.sym}, {"desc_act", l.desc_act}};
  }
  for (const std::string& name : cfg.skipped_layers) {
    dynamic["-:" + ExactPattern(name)] = nlohmann::ordered_json::object();
  }
  if (!dynamic.empty()) j["dynamic"] = dynamic;

  std::set<std::string> skipped_in_block;
  for (const std::string& name : cfg.skipped_layers) {
    if (std::optional<std::string> rel = InBlockName(name)) skipped_in_block.insert(*rel);
  }
  if (!skipped_in_block.empty()) {
    std::vector<std::string> modules;
    for (const GptqLayerQuant& l : cfg.layers) {
      std::optional<std::string> rel = InBlockName(l.name);
      if (!rel.has_value()) continue;
      if (skipped_in_block.count(*rel) > 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer ", l.name, " is quantized but \"", *rel,
            "\" is skipped in another block; modules_in_block_to_quantize (HF optimum) applies "
            "to every block alike and cannot express that"));
      }
      if (std::find(modules.begin(), modules.end(), *rel) == modules.end()) {
        modules.push_back(*rel);
      }
    }
    j["modules_in_block_to_quantize"] = nlohmann::ordered_json::array({modules});
  }
  return j;
}

}  // namespace rtnq
