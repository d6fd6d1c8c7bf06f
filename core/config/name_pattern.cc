#include "core/config/name_pattern.h"

#include <re2/re2.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/config/input_limits.h"

namespace rtnq {

bool NamePattern::IsPattern(std::string_view key) {
  return key.starts_with(kRegexKeyPrefix) || key.find_first_of("*?") != std::string_view::npos;
}

absl::StatusOr<NamePattern> NamePattern::Compile(std::string_view key, int64_t regex_max_mem,
                                                 int max_nesting) {
  NamePattern p;
  if (!key.starts_with(kRegexKeyPrefix)) {
    p.glob_ = std::string(key);
    return p;
  }
  const std::string_view expr = key.substr(kRegexKeyPrefix.size());
  if (expr.empty()) return absl::InvalidArgumentError("empty regex");
  // RE2 itself copes with deep nesting; the limit keeps its parse and compile work small and
  // gives the error a name.
  if (const int depth = RegexNestingDepth(expr); depth > max_nesting) {
    return absl::InvalidArgumentError(absl::StrCat("invalid regex ", QuoteForMessage(expr),
                                                   ": groups nested ", depth,
                                                   " deep, over the limit of ", max_nesting));
  }
  RE2::Options options;
  options.set_log_errors(false);  // errors come back as a Status
  // Byte-wise, like the std::regex engine before: names are compared as bytes everywhere else,
  // and Latin-1 programs are smaller (`.` is one instruction, not a UTF-8 decoder).
  options.set_encoding(RE2::Options::EncodingLatin1);
  options.set_max_mem(regex_max_mem);
  p.regex_ = std::make_unique<RE2>(re2::StringPiece(expr.data(), expr.size()), options);
  if (!p.regex_->ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid regex ", QuoteForMessage(expr), ": ", p.regex_->error(),
                     " (patterns use RE2 syntax: no backreferences or lookaround; at most ",
                     regex_max_mem, " bytes compiled)"));
  }
  return p;
}

bool NamePattern::FullMatch(std::string_view name) const {
  if (regex_ == nullptr) return GlobFullMatch(glob_, name);
  return RE2::FullMatch(re2::StringPiece(name.data(), name.size()), *regex_);
}

size_t NamePattern::size() const {
  return regex_ == nullptr ? glob_.size() : static_cast<size_t>(regex_->ProgramSize());
}

NamePattern::NamePattern(NamePattern&&) noexcept = default;
NamePattern& NamePattern::operator=(NamePattern&&) noexcept = default;
NamePattern::~NamePattern() = default;

bool GlobFullMatch(std::string_view pat, std::string_view s, size_t* steps) {
  size_t p = 0, i = 0, star = std::string_view::npos, mark = 0, n = 0;
  bool matched = false;
  while (true) {
    ++n;
    if (i == s.size()) {
      while (p < pat.size() && pat[p] == '*') ++p;
      matched = p == pat.size();
      break;
    }
    if (p < pat.size() && pat[p] == '*') {
      // Only the last star needs remembering: an earlier one can never do better, because
      // whatever it would absorb the later star absorbs too.
      star = p++;
      mark = i;
    } else if (p < pat.size() && (pat[p] == '?' || pat[p] == s[i])) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      break;
    }
  }
  if (steps != nullptr) *steps = n;
  return matched;
}

int RegexNestingDepth(std::string_view expr) {
  int depth = 0, deepest = 0;
  bool in_class = false;
  for (size_t i = 0; i < expr.size(); ++i) {
    const char c = expr[i];
    if (c == '\\') {
      ++i;  // the escaped character is literal
    } else if (in_class) {
      if (c == ']') in_class = false;
    } else if (c == '[') {
      in_class = true;
      // A `]` first in a class (after an optional `^`) is a literal.
      if (i + 1 < expr.size() && expr[i + 1] == '^') ++i;
      if (i + 1 < expr.size() && expr[i + 1] == ']') ++i;
    } else if (c == '(') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ')') {
      depth = std::max(0, depth - 1);
    }
  }
  return deepest;
}

}  // namespace rtnq
