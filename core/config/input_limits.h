// Limits on the input a peer controls: session configs (JSON and weight_config), tensor names and
// safetensors headers. They keep the work and memory of parsing and matching bounded per input
// byte; each is documented (README.md "Limits on configs, names and headers", docs/PROTOCOL.md
// "Limits") and a breach is an InvalidArgument error naming the limit and the value.
// The defaults are the constants; tests shrink them through the structs below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rtnq {

/// Longest tensor name resolved or read from a safetensors header (real checkpoints stay < 300).
inline constexpr size_t kMaxTensorNameBytes = 4096;
/// Longest weight_config key (an exact name or a pattern).
inline constexpr size_t kMaxWeightConfigKeyBytes = 4096;
/// Most weight_config entries in one session config.
inline constexpr size_t kMaxWeightConfigEntries = 100'000;
/// Largest session config: the config_json text, or the weight_config keys' total bytes.
inline constexpr size_t kMaxConfigBytes = 16 << 20;
/// Deepest JSON nesting accepted (configs need 3 levels, safetensors headers 3).
inline constexpr int kMaxJsonDepth = 64;
/// Total size of one config's patterns: the bytes of each glob plus the instructions of each
/// compiled regex (RE2's program size; about the regex's length for ordinary patterns, more for
/// counted repeats such as `.{200}`). Resolving a name costs at most about (this size x name
/// bytes) steps, so this bounds the work per tensor name (Envoy, for comparison, limits each
/// regex to 100 instructions by default).
inline constexpr size_t kMaxWeightConfigPatternSize = 4096;
/// Most `re:` keys in one config; each regex may use up to kRegexMaxMemBytes.
inline constexpr size_t kMaxWeightConfigRegexes = 64;
/// RE2 memory budget of one compiled regex: program + DFA cache (RE2's default is 8 MiB). A
/// regex whose DFA outgrows it falls back to RE2's NFA, still linear in the name.
inline constexpr int64_t kRegexMaxMemBytes = 256 << 10;
/// Deepest group nesting in a `re:` pattern.
inline constexpr int kMaxRegexNesting = 64;
/// Largest safetensors JSON header, as the official implementation limits it.
inline constexpr uint64_t kMaxSafetensorsHeaderSize = 100'000'000;
/// Most tensors in one safetensors file.
inline constexpr size_t kMaxSafetensorsTensors = 1'000'000;

/// The config and name limits, as one value a parser takes (defaults: the constants above).
struct ConfigLimits {
  size_t max_config_bytes = kMaxConfigBytes;
  int max_json_depth = kMaxJsonDepth;
  size_t max_entries = kMaxWeightConfigEntries;
  size_t max_key_bytes = kMaxWeightConfigKeyBytes;
  size_t max_name_bytes = kMaxTensorNameBytes;
  size_t max_pattern_size = kMaxWeightConfigPatternSize;
  size_t max_regexes = kMaxWeightConfigRegexes;
  int64_t regex_max_mem = kRegexMaxMemBytes;
  int max_regex_nesting = kMaxRegexNesting;
};

/// The safetensors header limits (defaults: the constants above).
struct SafetensorsLimits {
  uint64_t max_header_bytes = kMaxSafetensorsHeaderSize;
  size_t max_tensors = kMaxSafetensorsTensors;
  size_t max_name_bytes = kMaxTensorNameBytes;
  int max_json_depth = kMaxJsonDepth;
};

/// `s` for an error message: cut to `max_bytes` (then "..." and the full length follow) and with
/// `"`, control characters and bytes >= 0x7f escaped (\", \xNN), so a hostile name can neither
/// flood a message nor forge lines in a log.
std::string EscapeForMessage(std::string_view s, size_t max_bytes = 64);

/// EscapeForMessage in double quotes: "name".
std::string QuoteForMessage(std::string_view s, size_t max_bytes = 64);

}  // namespace rtnq
