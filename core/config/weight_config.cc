#include "core/config/weight_config.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/config/config_json.h"
#include "core/config/name_pattern.h"
#include "core/config/strict_json.h"
#include "core/status_macros.h"

namespace rtnq {
namespace {

// Keys reach messages escaped and cut (the server cuts whole messages at 1 KiB anyway).
constexpr size_t kKeyBytesInMessages = 256;

std::string EntryWhere(std::string_view key) {
  return absl::StrCat("weight_config[", QuoteForMessage(key, kKeyBytesInMessages), "]");
}

absl::Status Prefixed(std::string_view where, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(std::string(where), ": ",
                                             std::string(s.message().data(), s.message().size())));
}

absl::Status OverLimit(std::string_view where, std::string_view what, size_t value, size_t limit,
                       std::string_view limit_name) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(where), ": ", std::string(what), " ",
                                                 value, " is over the limit of ", limit, " (",
                                                 std::string(limit_name), ")"));
}

// The layer (module) a tensor belongs to: its name minus the last dotted component.
std::string_view LayerName(std::string_view tensor_name) {
  const size_t dot = tensor_name.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return {};
  return tensor_name.substr(0, dot);
}

}  // namespace

struct WeightConfigResolver::Compiled {
  struct Pattern {
    size_t entry;
    NamePattern pattern;
  };
  std::vector<QuantConfig> merged;  // default + entry patch, per entry
  // Views into the resolver's entries_, whose strings never move (the vector is only moved).
  std::unordered_map<std::string_view, size_t> exact;
  std::vector<Pattern> patterns;  // longest key first, then listed order
};

absl::StatusOr<WeightConfigResolver> WeightConfigResolver::Create(
    QuantConfig default_config, std::vector<WeightConfigEntry> entries,
    const ConfigLimits& limits) {
  if (absl::Status s = ValidateConfig(default_config); !s.ok()) return Prefixed("config", s);
  if (entries.size() > limits.max_entries) {
    return OverLimit("config", "weight_config entry count", entries.size(), limits.max_entries,
                     "max weight_config entries");
  }
  auto c = std::make_unique<Compiled>();
  c->merged.reserve(entries.size());
  c->exact.reserve(entries.size());
  // Exact keys and pattern keys never collide (a pattern has `*`, `?` or the `re:` prefix), so
  // duplicates are found in `exact` and, for the few patterns, in `pattern_keys`.
  std::unordered_map<std::string_view, size_t> pattern_keys;
  size_t key_bytes = 0, pattern_size = 0, regexes = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const std::string& key = entries[i].key;
    auto where = [&key] { return EntryWhere(key); };
    if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(where(), ": key is empty"));
    if (key.size() > limits.max_key_bytes) {
      return OverLimit(where(), "key length", key.size(), limits.max_key_bytes,
                       "max weight_config key bytes");
    }
    if ((key_bytes += key.size()) > limits.max_config_bytes) {
      return OverLimit(where(), "total bytes of weight_config keys", key_bytes,
                       limits.max_config_bytes, "max config bytes");
    }
    const bool is_pattern = NamePattern::IsPattern(key);
    if (auto [it, inserted] = (is_pattern ? pattern_keys : c->exact).emplace(key, i); !inserted) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), ": duplicate key (entries ", it->second, " and ", i, ")"));
    }
    QuantConfig merged = default_config;
    entries[i].patch.ApplyTo(merged);
    if (absl::Status s = ValidateConfig(merged); !s.ok()) return Prefixed(where(), s);
    c->merged.push_back(merged);
    if (!is_pattern) continue;

    if (key.starts_with(kRegexKeyPrefix) && ++regexes > limits.max_regexes) {
      return OverLimit(where(), "regex count", regexes, limits.max_regexes,
                       "max regexes per config");
    }
    absl::StatusOr<NamePattern> p =
        NamePattern::Compile(key, limits.regex_max_mem, limits.max_regex_nesting);
    if (!p.ok()) return Prefixed(where(), p.status());
    if ((pattern_size += p->size()) > limits.max_pattern_size) {
      return OverLimit(where(), "pattern size (glob bytes + regex instructions)", pattern_size,
                       limits.max_pattern_size, "max pattern size per config");
    }
    c->patterns.push_back(Compiled::Pattern{i, *std::move(p)});
  }
  std::stable_sort(c->patterns.begin(), c->patterns.end(),
                   [&entries](const Compiled::Pattern& a, const Compiled::Pattern& b) {
                     return entries[a.entry].key.size() > entries[b.entry].key.size();
                   });
  return WeightConfigResolver(std::move(default_config), std::move(entries), std::move(c),
                              limits.max_name_bytes);
}

absl::StatusOr<ResolvedConfig> WeightConfigResolver::Resolve(std::string_view tensor_name) const {
  if (tensor_name.size() > max_name_bytes_) {
    return OverLimit(absl::StrCat("tensor ", QuoteForMessage(tensor_name)), "name length",
                     tensor_name.size(), max_name_bytes_, "max tensor name bytes");
  }
  const Compiled& c = *compiled_;
  auto decided = [&](size_t entry, const char* kind) {
    return ResolvedConfig{c.merged[entry], entries_[entry].key, kind};
  };
  if (auto it = c.exact.find(tensor_name); it != c.exact.end()) {
    return decided(it->second, "tensor");
  }
  const std::string_view layer = LayerName(tensor_name);
  if (!layer.empty()) {
    if (auto it = c.exact.find(layer); it != c.exact.end()) return decided(it->second, "layer");
  }
  for (const Compiled::Pattern& p : c.patterns) {
    if (p.pattern.FullMatch(tensor_name) || (!layer.empty() && p.pattern.FullMatch(layer))) {
      return decided(p.entry, "pattern");
    }
  }
  return ResolvedConfig{default_, "", "default"};
}

WeightConfigResolver::WeightConfigResolver(QuantConfig d, std::vector<WeightConfigEntry> e,
                                           std::unique_ptr<Compiled> c, size_t max_name_bytes)
    : default_(std::move(d)),
      max_name_bytes_(max_name_bytes),
      entries_(std::move(e)),
      compiled_(std::move(c)) {}
WeightConfigResolver::WeightConfigResolver(WeightConfigResolver&&) noexcept = default;
WeightConfigResolver& WeightConfigResolver::operator=(WeightConfigResolver&&) noexcept = default;
WeightConfigResolver::~WeightConfigResolver() = default;

absl::StatusOr<WeightConfigResolver> ParseSessionConfigJson(std::string_view json_text,
                                                            const ConfigLimits& limits) {
  constexpr std::string_view kWhere = "config";
  if (json_text.size() > limits.max_config_bytes) {
    return OverLimit(kWhere, "config_json size", json_text.size(), limits.max_config_bytes,
                     "max config bytes");
  }
  RTNQ_ASSIGN_OR_RETURN(const nlohmann::ordered_json j,
                        ParseStrictJson(json_text, kWhere, limits.max_json_depth));
  static constexpr std::string_view kSessionKeys[] = {"weight_config"};
  RTNQ_ASSIGN_OR_RETURN(const QuantConfigPatch default_patch,
                        PatchFromJson(j, kWhere, kSessionKeys));
  QuantConfig default_config;
  default_patch.ApplyTo(default_config);

  std::vector<WeightConfigEntry> entries;
  // PatchFromJson has checked that j is an object.
  if (const auto wc = j.find("weight_config"); wc != j.end()) {
    if (!wc->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config: weight_config must be an object mapping tensor or layer names to configs, got ",
          JsonSnippet(*wc)));
    }
    if (wc->size() > limits.max_entries) {
      return OverLimit(kWhere, "weight_config entry count", wc->size(), limits.max_entries,
                       "max weight_config entries");
    }
    entries.reserve(wc->size());
    // ordered_json keeps the listed order, which breaks ties between equally long patterns.
    for (auto it = wc->begin(); it != wc->end(); ++it) {
      RTNQ_ASSIGN_OR_RETURN(QuantConfigPatch patch,
                            PatchFromJson(it.value(), EntryWhere(it.key())));
      entries.push_back(WeightConfigEntry{it.key(), std::move(patch)});
    }
  }
  return WeightConfigResolver::Create(std::move(default_config), std::move(entries), limits);
}

}  // namespace rtnq
