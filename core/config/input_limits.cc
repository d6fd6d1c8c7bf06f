#include "core/config/input_limits.h"

#include "absl/strings/str_cat.h"

namespace rtnq {

std::string EscapeForMessage(std::string_view s, size_t max_bytes) {
  const std::string_view shown = s.substr(0, max_bytes);
  std::string out;
  for (const unsigned char c : shown) {
    if (c == '"') {
      out += "\\\"";
    } else if (c >= 0x20 && c < 0x7f) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(c, absl::kZeroPad2));
    }
  }
  if (shown.size() < s.size()) absl::StrAppend(&out, "... (", s.size(), " bytes)");
  return out;
}

std::string QuoteForMessage(std::string_view s, size_t max_bytes) {
  // The cut marker goes outside the quotes: "abc..." would read as part of the name.
  const std::string_view shown = s.substr(0, max_bytes);
  std::string out = absl::StrCat("\"", EscapeForMessage(shown, max_bytes), "\"");
  if (shown.size() < s.size()) absl::StrAppend(&out, "... (", s.size(), " bytes)");
  return out;
}

}  // namespace rtnq
