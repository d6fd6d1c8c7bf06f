// Fuzzes the session config a client sends (config_json): ParseSessionConfigJson, then
// WeightConfigResolver::Resolve on names the fuzzer chooses. Input: the config JSON, then tensor
// names, all separated by NUL bytes. Errors must be InvalidArgument; a resolution must be
// consistent with how it says it matched.
#include <cstdint>
#include <string>

#include "core/config/config_json.h"
#include "core/config/weight_config.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rtnq;
  const std::vector<std::string_view> parts = fuzz::SplitAtNul(fuzz::AsText(data, size));
  absl::StatusOr<WeightConfigResolver> resolver = ParseSessionConfigJson(parts[0]);
  // The same text as a bare config patch (the client's --config file path).
  absl::StatusOr<QuantConfigPatch> patch = ParseConfigPatchJson(parts[0], "fuzz");
  if (!patch.ok()) RTNQ_FUZZ_CHECK(patch.status().code() == absl::StatusCode::kInvalidArgument);
  if (!resolver.ok()) {
    RTNQ_FUZZ_CHECK(resolver.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    const absl::StatusOr<ResolvedConfig> resolved = resolver->Resolve(parts[i]);
    if (!resolved.ok()) {
      RTNQ_FUZZ_CHECK(parts[i].size() > kMaxTensorNameBytes &&
                      resolved.status().code() == absl::StatusCode::kInvalidArgument);
      continue;
    }
    const ResolvedConfig& r = *resolved;
    RTNQ_FUZZ_CHECK(ValidateConfig(r.config).ok());
    if (r.match_kind == "default") {
      RTNQ_FUZZ_CHECK(r.decided_by.empty() && r.config == resolver->default_config());
    } else if (r.match_kind == "tensor") {
      RTNQ_FUZZ_CHECK(r.decided_by == parts[i]);
    } else if (r.match_kind == "layer") {
      RTNQ_FUZZ_CHECK(parts[i].size() > r.decided_by.size() && parts[i].starts_with(r.decided_by) &&
                      parts[i][r.decided_by.size()] == '.');
    } else {
      RTNQ_FUZZ_CHECK(r.match_kind == "pattern" && !r.decided_by.empty());
    }
  }
  return 0;
}
