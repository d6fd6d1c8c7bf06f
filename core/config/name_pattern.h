// weight_config patterns: globs and `re:` regexes, matched against a whole tensor or layer name in
// time linear in the name (no backtracking regex engine, no recursion).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}

namespace rtnq {

/// The prefix that makes a weight_config key a regex.
inline constexpr std::string_view kRegexKeyPrefix = "re:";

/// A compiled pattern key. Movable; FullMatch is const and safe to call from many threads.
class NamePattern {
 public:
  /// Whether `key` is a pattern (starts with `re:`, or contains `*` or `?`) rather than a name.
  static bool IsPattern(std::string_view key);

  /// Compiles a pattern key. `re:` keys use RE2 syntax (ECMAScript's common subset: no
  /// backreferences, no lookaround), matched byte-wise (Latin-1: `.` is any byte but newline,
  /// as std::regex did), with at most `max_nesting` nested groups and `regex_max_mem` bytes for
  /// RE2's program and DFA cache; errors are InvalidArgument quoting the expression and RE2's
  /// message (or the nesting limit), without the key prefix (the caller adds it).
  static absl::StatusOr<NamePattern> Compile(std::string_view key, int64_t regex_max_mem,
                                             int max_nesting);

  /// Whether the pattern matches all of `name`.
  bool FullMatch(std::string_view name) const;
  bool is_regex() const { return regex_ != nullptr; }
  /// What one name byte costs at most, in steps: a glob's length, a regex's instruction count.
  size_t size() const;

  NamePattern(NamePattern&&) noexcept;
  NamePattern& operator=(NamePattern&&) noexcept;
  ~NamePattern();

 private:
  NamePattern() = default;
  std::string glob_;                 // when not a regex
  std::unique_ptr<re2::RE2> regex_;  // when a regex
};

/// Glob full match: `*` matches any run of bytes (dots included), `?` exactly one byte, anything
/// else itself. Iterative with one resumption point (the last `*`), so at most about
/// |pattern| x |name| steps, never exponential; `steps`, when given, receives the count.
bool GlobFullMatch(std::string_view pattern, std::string_view name, size_t* steps = nullptr);

/// Deepest group nesting of an RE2 pattern (parentheses outside character classes and escapes).
int RegexNestingDepth(std::string_view expr);

}  // namespace rtnq
