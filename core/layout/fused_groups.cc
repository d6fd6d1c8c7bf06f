#include "core/layout/fused_groups.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "core/layout/output_plan.h"

namespace rtnq {
namespace {

bool OneOf(std::string_view s, std::initializer_list<std::string_view> options) {
  return std::find(options.begin(), options.end(), s) != options.end();
}

bool IsNumber(std::string_view s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
}

// The first `n` components of `parts` and then `last`, joined by dots.
std::string Join(const std::vector<std::string>& parts, size_t n, std::string_view last) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out.append(parts[i]).append(".");
  return out.append(last);
}

}  // namespace

std::optional<FusedGroup> FusedGroupOf(std::string_view tensor_name) {
  const std::string layer = LayerName(tensor_name);
  const std::vector<std::string> parts = absl::StrSplit(layer, '.');
  const size_t n = parts.size();
  if (n < 2) return std::nullopt;
  // Experts: the component "experts" followed by "N.proj" or a stacked projection.
  for (size_t k = 1; k + 1 < n; ++k) {
    if (parts[k] != "experts") continue;
    const bool per_expert =
        k + 3 == n && IsNumber(parts[k + 1]) &&
        OneOf(parts[k + 2], {"gate_proj", "up_proj", "down_proj", "w1", "w2", "w3"});
    const bool stacked =
        k + 2 == n && OneOf(parts[k + 1], {"gate_up_proj", "gate_proj", "up_proj", "down_proj"});
    if (per_expert || stacked) return FusedGroup{Join(parts, k, "experts"), "experts"};
  }
  const std::string_view last = parts[n - 1];
  if (OneOf(last, {"q_proj", "k_proj", "v_proj"})) {
    return FusedGroup{Join(parts, n - 1, "qkv_proj"), "qkv"};
  }
  if (OneOf(last, {"q_a_proj", "kv_a_proj_with_mqa"})) {
    return FusedGroup{Join(parts, n - 1, "fused_qkv_a_proj"), "qkv_a"};
  }
  if (OneOf(last, {"gate_proj", "up_proj"})) {
    return FusedGroup{Join(parts, n - 1, "gate_up_proj"), "gate_up"};
  }
  return std::nullopt;
}

std::vector<std::vector<size_t>> GroupFusedTensors(const std::vector<std::string>& names) {
  std::vector<std::vector<size_t>> groups;
  std::map<std::string, size_t> by_fused;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::optional<FusedGroup> g = FusedGroupOf(names[i]);
    if (!g.has_value()) {
      groups.push_back({i});
      continue;
    }
    auto [it, inserted] = by_fused.emplace(g->name, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  return groups;
}

}  // namespace rtnq
