// Parsing JSON a peer sends, in bounded time and memory: one pass, no recursion, a depth limit,
// duplicate keys rejected, and error messages that never echo unbounded input.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rtnq {

/// Parses `text` as one JSON value with keys in their listed order. Time and memory are linear in
/// the text (nlohmann's DOM parser is quadratic in the keys of an object, and its error path
/// recurses). InvalidArgument, message without prefix, for: invalid JSON or UTF-8 (`invalid JSON:
/// ` and nlohmann's message with the byte position, cut to 256 bytes), nesting deeper than
/// `max_depth` containers (`JSON nested deeper than the limit of N levels at "a"."b"[0]...`), and
/// a key repeated within one object (`duplicate key "k"`, plus ` in "a"."b"` below the top level).
/// Throws nothing.
absl::StatusOr<nlohmann::ordered_json> ParseJsonBounded(std::string_view text, int max_depth);

/// `v` for an error message: compact JSON, cut to about 64 bytes ("..." marks a cut), produced
/// iteratively in O(64) work whatever the size or depth of `v`; invalid UTF-8 is replaced.
std::string JsonSnippet(const nlohmann::json& v);
std::string JsonSnippet(const nlohmann::ordered_json& v);

}  // namespace rtnq
