// The bytes a quantize run will write, known from its plan alone: each output safetensors file's
// header (built exactly as the writer builds it) plus its data.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/run_plan.h"

namespace rtnq::client {

/// Each output file's name and size in bytes, in plan order. Errors are the writer's
/// (BuildSafetensorsHeader) for a plan it would refuse.
absl::StatusOr<std::vector<std::pair<std::string, uint64_t>>> PredictFileSizes(const RunPlan& plan);

/// Bytes of tensors laid out as `specs` (elements times element size, summed).
uint64_t SpecsBytes(const std::vector<TensorSpec>& specs);
/// Output bytes of one planned tensor (all its output tensors).
inline uint64_t PlannedTensorBytes(const PlannedTensor& p) { return SpecsBytes(p.outputs); }

}  // namespace rtnq::client
