// Per-layer overrides (INC's weight_config): which config applies to which tensor, and why.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/config/input_limits.h"
#include "core/config/quant_config.h"

namespace rtnq {

/// One weight_config entry: a key and the fields it overrides.
struct WeightConfigEntry {
  std::string key;  ///< exact tensor name, layer name, glob (`*`, `?`), or `re:<RE2 regex>`
  QuantConfigPatch patch;
};

/// The config that applies to one tensor and the entry that decided it.
struct ResolvedConfig {
  QuantConfig config;
  /// Key of the deciding weight_config entry; empty when the session default applied.
  std::string decided_by;
  /// "default", "tensor", "layer" or "pattern".
  std::string match_kind;
};

/// Resolves tensor names against a session default plus weight_config entries.
/// Precedence: exact tensor name > exact layer name (tensor `a.b.fc1.weight` matches key
/// `a.b.fc1`) > patterns (longest key first, then first listed). A pattern is `re:<regex>` in
/// RE2 syntax (ECMAScript's common subset; no backreferences or lookaround) or a glob (`*` any run
/// of characters, dots included; `?` one character); it must fully match the tensor name or its
/// layer name. Only one entry applies; it overrides only the fields it sets on top of the default.
///
/// Bounded work: exact and layer names are hash lookups; each pattern costs time linear in the
/// name (RE2 does not backtrack; globs resume only at their last `*`), at most its size (glob
/// bytes, regex instructions) steps per name byte, so Resolve is at most about (total pattern
/// size x name bytes) steps, both capped by `limits`. Resolve is const and safe to call from many
/// threads.
class WeightConfigResolver {
 public:
  /// Validates the default and every entry (keys non-empty, unique and within `limits`, regexes
  /// compile, each merged config is valid); errors are InvalidArgument prefixed
  /// `weight_config["KEY"]: ` (`config: ` for the default and for counts over a limit).
  static absl::StatusOr<WeightConfigResolver> Create(QuantConfig default_config,
                                                     std::vector<WeightConfigEntry> entries,
                                                     const ConfigLimits& limits = {});

  /// The config for `tensor_name`; InvalidArgument when the name is longer than the limit.
  absl::StatusOr<ResolvedConfig> Resolve(std::string_view tensor_name) const;

  const QuantConfig& default_config() const { return default_; }
  const std::vector<WeightConfigEntry>& entries() const { return entries_; }

  WeightConfigResolver(WeightConfigResolver&&) noexcept;
  WeightConfigResolver& operator=(WeightConfigResolver&&) noexcept;
  ~WeightConfigResolver();

 private:
  struct Compiled;
  WeightConfigResolver(QuantConfig d, std::vector<WeightConfigEntry> e, std::unique_ptr<Compiled> c,
                       size_t max_name_bytes);
  QuantConfig default_;
  size_t max_name_bytes_;
  std::vector<WeightConfigEntry> entries_;
  std::unique_ptr<Compiled> compiled_;
};

/// Parses a session config JSON object: the default config keys at top level (as
/// ParseConfigPatchJson accepts) plus an optional "weight_config": {key: {fields}} object.
/// Unknown keys anywhere are errors, and so are texts, nesting and entry counts over `limits`.
/// Time and memory are linear in the text.
absl::StatusOr<WeightConfigResolver> ParseSessionConfigJson(std::string_view json_text,
                                                            const ConfigLimits& limits = {});

}  // namespace rtnq
