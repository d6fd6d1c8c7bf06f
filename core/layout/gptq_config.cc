#include "core/layout/gptq_config.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "core/layout/fused_groups.h"
#include "core/layout/quantized_layer.h"

namespace rtnq {
namespace {

using Key = std::tuple<int, int64_t, bool, bool>;

Key KeyOf(const GptqLayerQuant& l) { return {l.bits, l.group_size, l.sym, l.desc_act}; }

// `text` with Python `re` metacharacters escaped.
std::string Escape(std::string_view text) {
  std::string out;
  for (char ch : text) {
    if (std::string_view(".^$*+?()[]{}|\\").find(ch) != std::string_view::npos) out += '\\';
    out += ch;
  }
  return out;
}

// A Python `re` pattern matching exactly `name`.
std::string ExactPattern(const std::string& name) { return "^" + Escape(name) + "$"; }

// The last dotted component of `name`.
std::string LastPart(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// One "dynamic" key's subject: a layer alone, or the parts of a fused module that share one
// state (all quantized with one key, or all skipped).
struct DynamicUnit {
  std::vector<std::string> names;
  std::optional<FusedGroup> fused;
  std::optional<Key> key;  // nullopt: skipped
};

// The pattern of a unit: its parts' names and, for a fused module, the name vLLM gives it.
std::string UnitPattern(const DynamicUnit& u) {
  if (!u.fused.has_value()) return ExactPattern(u.names[0]);
  if (u.fused->kind == "experts") return "^" + Escape(u.fused->name) + "(\\..+)?$";
  const std::string fused_last = LastPart(u.fused->name);
  const std::string parent(u.fused->name.substr(0, u.fused->name.size() - fused_last.size()));
  std::string alternatives;
  for (const std::string& n : u.names) absl::StrAppend(&alternatives, LastPart(n), "|");
  return absl::StrCat("^", Escape(parent), "(", alternatives, fused_last, ")$");
}

// Groups the layers into units: a fused module whose parts agree is one unit, everything else
// one unit per layer. Units come in the order of their first layer, quantized before skipped.
std::vector<DynamicUnit> DynamicUnits(const GptqCheckpointConfig& cfg) {
  std::vector<DynamicUnit> parts;
  for (const GptqLayerQuant& l : cfg.layers)
    parts.push_back({{l.name}, FusedGroupOf(l.name), KeyOf(l)});
  for (const std::string& n : cfg.skipped_layers)
    parts.push_back({{n}, FusedGroupOf(n), std::nullopt});
  std::map<std::string, std::vector<size_t>> by_fused;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i].fused.has_value()) by_fused[parts[i].fused->name].push_back(i);
  }
  std::vector<bool> merged(parts.size(), false);
  std::vector<DynamicUnit> units;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (merged[i]) continue;
    if (!parts[i].fused.has_value()) {
      units.push_back(parts[i]);
      continue;
    }
    const std::vector<size_t>& members = by_fused[parts[i].fused->name];
    const bool agree = std::all_of(members.begin(), members.end(),
                                   [&](size_t m) { return parts[m].key == parts[i].key; });
    if (!agree) {
      units.push_back({parts[i].names, std::nullopt, parts[i].key});
      continue;
    }
    DynamicUnit u{{}, parts[i].fused, parts[i].key};
    for (size_t m : members) {
      u.names.push_back(parts[m].names[0]);
      merged[m] = true;
    }
    units.push_back(std::move(u));
  }
  return units;
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
  j["format"] = GptqFormatName(cfg.format);
  j["pack_dtype"] = "int32";
  j["damp_percent"] = cfg.damp_percent;
  j["true_sequential"] = cfg.true_sequential;
  j["lm_head"] = std::any_of(cfg.layers.begin(), cfg.layers.end(),
                             [](const GptqLayerQuant& l) { return IsLmHead(l.name); });
  j["meta"] = {{"quantizer", {cfg.producer}}};

  const Key global{cfg.bits, cfg.group_size, cfg.sym, cfg.desc_act};
  nlohmann::ordered_json dynamic = nlohmann::ordered_json::object();
  const std::vector<DynamicUnit> units = DynamicUnits(cfg);
  for (const DynamicUnit& u : units) {
    if (!u.key.has_value() || *u.key == global) continue;
    const auto& [bits, group_size, sym, desc_act] = *u.key;
    dynamic["+:" + UnitPattern(u)] = {
        {"bits", bits}, {"group_size", group_size}, {"sym", sym}, {"desc_act", desc_act}};
  }
  for (const DynamicUnit& u : units) {
    if (!u.key.has_value()) dynamic["-:" + UnitPattern(u)] = nlohmann::ordered_json::object();
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
