// FP8 checkpoints as rtnq's client reads them: config.json gives the block size, every FP8
// tensor is dequantized to float32 with its scale before it reaches a backend (so local and
// remote runs see the same float32 weight), and the scales are consumed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/checkpoint_util.h"
#include "core/engine.h"
#include "core/io/fp8_source.h"

namespace rtnq::client {

/// config.json of a checkpoint directory, or a null JSON for a file input or a directory without
/// one. InvalidArgument naming the file when it is not a JSON object.
absl::StatusOr<nlohmann::ordered_json> ReadInputConfig(const std::string& input_path,
                                                       const InputCheckpoint& input);

/// The FP8 sources among `tensors` (core/io/fp8_source.h; headers only), with the block size
/// `config` states.
absl::StatusOr<Fp8SourcePlan> PlanInputFp8(const std::vector<const TensorInfo*>& tensors,
                                           const nlohmann::ordered_json& config);

/// FP8 tensor `t` of `input` dequantized with its scale: float32 bytes of the same shape.
/// Errors name the tensor (a scale missing from `input`, byte counts not matching the layout).
absl::StatusOr<std::vector<uint8_t>> DequantizedFp8Bytes(const InputCheckpoint& input,
                                                         const TensorInfo& t,
                                                         const Fp8ScaleLayout& layout,
                                                         const Engine& engine);

/// "dequantized from F8_E4M3 (128x128 blocks)", for reports and manifests.
std::string Fp8SourceNote(const TensorInfo& t, const Fp8ScaleLayout& layout);

}  // namespace rtnq::client
