#include "client/plan/predict.h"

#include "core/io/safetensors_header.h"
#include "core/status_macros.h"

namespace rtnq::client {

absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> PredictFileSizes(
    const RunPlan& plan) {
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const PlannedFile& f : plan.files) {
    RTNQ_ASSIGN_OR_RETURN(const BuiltHeader h, BuildSafetensorsHeader(f.specs, plan.metadata));
    out.emplace_back(f.name, h.file_size());
  }
  return out;
}

uint64_t SpecsBytes(const std::vector<TensorSpec>& specs) {
  uint64_t total = 0;
  for (const TensorSpec& s : specs) {
    uint64_t n = ElemSize(s.dtype);
    for (int64_t d : s.shape) n *= static_cast<uint64_t>(d);
    total += n;
  }
  return total;
}

}  // namespace rtnq::client
