#include "core/weight_config.h"

#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>

// GCC 12 warns falsely inside libstdc++'s <regex> when optimizing with sanitizers (GCC PR 105562).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <regex>
#pragma GCC diagnostic pop

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/config_json.h"
#include "core/status_macros.h"

namespace rtnq {
namespace {

constexpr std::string_view kRegexPrefix = "re:";

std::string EntryWhere(std::string_view key) {
  return absl::StrCat("weight_config[\"", std::string(key), "\"]");
}

absl::Status Prefixed(std::string_view where, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(std::string(where), ": ",
                                             std::string(s.message().data(), s.message().size())));
}

bool IsGlob(std::string_view key) { return key.find_first_of("*?") != std::string_view::npos; }

// `*` matches any run of characters (dots included), `?` exactly one; everything else is
// literal. Greedy with one backtrack point, so linear-ish rather than exponential.
bool GlobFullMatch(std::string_view pat, std::string_view s) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && (pat[p] == '?' || pat[p] == s[i])) {
      ++p;
      ++i;
    } else if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

// The layer (module) a tensor belongs to: its name minus the last dotted component.
std::string_view LayerName(std::string_view tensor_name) {
  const size_t dot = tensor_name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  return tensor_name.substr(0, dot);
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace

struct WeightConfigResolver::Compiled {
  struct Pattern {
    size_t entry;
    bool is_regex;
    std::regex regex;  // when is_regex
    std::string glob;  // otherwise
  };
  std::vector<QuantConfig> merged;  // default + entry patch, per entry
  std::unordered_map<std::string, size_t, StringHash, std::equal_to<>> exact;
  std::vector<Pattern> patterns;  // longest key first, then listed order

  bool Matches(const Pattern& p, std::string_view name) const {
    if (!p.is_regex) return GlobFullMatch(p.glob, name);
    return std::regex_match(name.begin(), name.end(), p.regex);
  }
};

absl::StatusOr<WeightConfigResolver> WeightConfigResolver::Create(
    QuantConfig default_config, std::vector<WeightConfigEntry> entries) {
  if (absl::Status s = ValidateConfig(default_config); !s.ok()) return Prefixed("config", s);
  auto c = std::make_unique<Compiled>();
  c->merged.reserve(entries.size());
  std::unordered_map<std::string_view, size_t> seen;
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& key = entries[i].key;
    const std::string where = EntryWhere(key);
    if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": key is empty"));
    if (auto [it, inserted] = seen.emplace(key, i); !inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": duplicate key (entries ", it->second, " and ", i, ")"));
    }
    QuantConfig merged = default_config;
    entries[i].patch.ApplyTo(merged);
    if (absl::Status s = ValidateConfig(merged); !s.ok()) return Prefixed(where, s);
    c->merged.push_back(merged);

    if (key.starts_with(kRegexPrefix)) {
      const std::string expr = key.substr(kRegexPrefix.size());
      if (expr.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": empty regex"));
      Compiled::Pattern p{i, true, {}, {}};
      try {
        p.regex = std::regex(expr, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": invalid regex \"", expr, "\": ", e.what()));
      }
      c->patterns.push_back(std::move(p));
    } else if (IsGlob(key)) {
      c->patterns.push_back(Compiled::Pattern{i, false, {}, key});
    } else {
      c->exact.emplace(key, i);
    }
  }
  std::stable_sort(c->patterns.begin(), c->patterns.end(),
                   [&entries](const Compiled::Pattern& a, const Compiled::Pattern& b) {
                     return entries[a.entry].key.size() > entries[b.entry].key.size();
                   });
  return WeightConfigResolver(std::move(default_config), std::move(entries), std::move(c));
}

ResolvedConfig WeightConfigResolver::Resolve(std::string_view tensor_name) const {
  const Compiled& c = *compiled_;
  auto decided = [&](size_t entry, const char* kind) {
    return ResolvedConfig{c.merged[entry], entries_[entry].key, kind};
  };
  if (auto it = c.exact.find(tensor_name); it != c.exact.end())
    return decided(it->second, "tensor");
  const std::string_view layer = LayerName(tensor_name);
  if (!layer.empty()) {
    if (auto it = c.exact.find(layer); it != c.exact.end()) return decided(it->second, "layer");
  }
  for (const Compiled::Pattern& p : c.patterns) {
    if (c.Matches(p, tensor_name) || (!layer.empty() && c.Matches(p, layer))) {
      return decided(p.entry, "pattern");
    }
  }
  return ResolvedConfig{default_, "", "default"};
}

WeightConfigResolver::WeightConfigResolver(QuantConfig d, std::vector<WeightConfigEntry> e,
                                           std::unique_ptr<Compiled> c)
    : default_(std::move(d)), entries_(std::move(e)), compiled_(std::move(c)) {}
WeightConfigResolver::WeightConfigResolver(WeightConfigResolver&&) noexcept = default;
WeightConfigResolver& WeightConfigResolver::operator=(WeightConfigResolver&&) noexcept = default;
WeightConfigResolver::~WeightConfigResolver() = default;

absl::StatusOr<WeightConfigResolver> ParseSessionConfigJson(std::string_view json_text) {
  constexpr std::string_view kWhere = "config";
  ASSIGN_OR_RETURN(const nlohmann::ordered_json j, ParseStrictJson(json_text, kWhere));
  static constexpr std::string_view kSessionKeys[] = {"weight_config"};
  ASSIGN_OR_RETURN(const QuantConfigPatch default_patch, PatchFromJson(j, kWhere, kSessionKeys));
  QuantConfig default_config;
  default_patch.ApplyTo(default_config);

  std::vector<WeightConfigEntry> entries;
  // PatchFromJson has checked that j is an object.
  if (const auto wc = j.find("weight_config"); wc != j.end()) {
    if (!wc->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config: weight_config must be an object mapping tensor or layer names to configs, got ",
          wc->dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace).substr(0, 64)));
    }
    // ordered_json keeps the listed order, which breaks ties between equally long patterns.
    for (auto it = wc->begin(); it != wc->end(); ++it) {
      ASSIGN_OR_RETURN(QuantConfigPatch patch, PatchFromJson(it.value(), EntryWhere(it.key())));
      entries.push_back(WeightConfigEntry{it.key(), std::move(patch)});
    }
  }
  return WeightConfigResolver::Create(std::move(default_config), std::move(entries));
}

}  // namespace rtnq
