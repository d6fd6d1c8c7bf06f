#include "core/layout/output_layout.h"

#include "absl/strings/str_cat.h"

namespace rtnq {

const std::string& OutputLayoutName(OutputLayout l) {
  static const std::string kNames[] = {"fake", "inc", "gptq", "compressed-tensors", "awq"};
  return kNames[static_cast<int>(l)];
}

absl::StatusOr<OutputLayout> ParseOutputLayout(std::string_view s) {
  for (OutputLayout l : kOutputLayouts) {
    if (s == OutputLayoutName(l)) return l;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "format must be fake, inc, gptq, compressed-tensors or awq, got \"", std::string(s), "\""));
}

}  // namespace rtnq
