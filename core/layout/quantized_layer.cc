#include "core/layout/quantized_layer.h"

#include <set>

#include "absl/strings/str_cat.h"

namespace rtnq {

std::vector<std::string> LayerNames(const std::vector<QuantizedLayer>& layers) {
  std::vector<std::string> names;
  for (const QuantizedLayer& l : layers) names.push_back(l.name);
  return names;
}

absl::Status CheckLayersListedOnce(const std::vector<std::string>& quantized,
                                   const std::vector<std::string>& unquantized) {
  std::set<std::string> seen;
  for (const std::string& name : quantized) {
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat("layer ", name, " is listed twice"));
    }
  }
  for (const std::string& name : unquantized) {
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", name, " is listed twice (quantized and unquantized, or repeated)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace rtnq
