#include "core/layout/compressed_tensors_config.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/layout/compressed_tensors.h"
#include "core/status_macros.h"

namespace rtnq {
namespace {

using Json = nlohmann::ordered_json;
// What the format records about a layer: bits, sym, group size.
using Key = std::tuple<int, bool, int64_t>;

Key KeyOf(const QuantConfig& c) { return {c.bits, c.scheme == Scheme::kSym, c.group_size}; }

Json WeightsArgs(const Key& k) {
  const auto& [bits, sym, group_size] = k;
  Json w;
  w["num_bits"] = bits;
  w["type"] = "int";
  w["symmetric"] = sym;
  w["group_size"] = group_size == -1 ? Json() : Json(group_size);
  w["strategy"] = group_size == -1 ? "channel" : "group";
  w["block_structure"] = nullptr;
  w["dynamic"] = false;
  w["actorder"] = nullptr;
  w["observer"] = nullptr;
  w["observer_kwargs"] = Json::object();
  return w;
}

}  // namespace

absl::StatusOr<nlohmann::ordered_json> CompressedTensorsQuantizationConfig(
    const std::vector<QuantizedLayer>& layers, const std::vector<std::string>& unquantized) {
  if (layers.empty()) {
    return absl::InvalidArgumentError(
        "compressed-tensors quantization_config: no layer is quantized");
  }
  RTNQ_RETURN_IF_ERROR(CheckLayersListedOnce(LayerNames(layers), unquantized));
  std::vector<std::pair<Key, std::vector<std::string>>> groups;
  for (const QuantizedLayer& l : layers) {
    // Shapes are checked where the tensors are planned; here any shape the config allows.
    const int64_t in = l.config.group_size > 0 ? l.config.group_size : 1;
    RTNQ_RETURN_IF_ERROR(CheckCompressedTensorsCompatible(l.name, l.config, 1, in));
    const Key k = KeyOf(l.config);
    auto it =
        std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == k; });
    if (it == groups.end()) it = groups.insert(groups.end(), {k, {}});
    it->second.push_back(l.name);
  }
  Json j;
  j["quant_method"] = "compressed-tensors";
  j["format"] = "pack-quantized";
  j["quantization_status"] = "compressed";
  Json config_groups = Json::object();
  for (size_t i = 0; i < groups.size(); ++i) {
    Json g;
    g["targets"] = groups[i].second;
    g["weights"] = WeightsArgs(groups[i].first);
    g["input_activations"] = nullptr;
    g["output_activations"] = nullptr;
    config_groups[absl::StrCat("group_", i)] = std::move(g);
  }
  j["config_groups"] = std::move(config_groups);
  j["ignore"] = unquantized;
  j["kv_cache_scheme"] = nullptr;
  j["global_compression_ratio"] = nullptr;
  j["sparsity_config"] = Json::object();
  j["transform_config"] = Json::object();
  return j;
}

}  // namespace rtnq
