// The output layouts a quantized checkpoint can take and their one spelling: the CLI's --format
// values, the names reports, manifests and messages print.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rtnq {

/// How quantized weights are stored: fake-quantized values in the input dtype, INC's packed
/// layout (PackInc), the GPTQ layout (PackGptq), compressed-tensors pack-quantized
/// (PackCompressedTensors) or AWQ GEMM (PackAwq).
enum class OutputLayout : uint8_t { kFake, kInc, kGptq, kCompressedTensors, kAwq };

/// Every layout, in enum order.
inline constexpr OutputLayout kOutputLayouts[] = {
    OutputLayout::kFake, OutputLayout::kInc, OutputLayout::kGptq, OutputLayout::kCompressedTensors,
    OutputLayout::kAwq};

/// "fake", "inc", "gptq", "compressed-tensors", "awq".
const std::string& OutputLayoutName(OutputLayout l);
/// The layout named `s` (OutputLayoutName); InvalidArgument naming the value for anything else.
absl::StatusOr<OutputLayout> ParseOutputLayout(std::string_view s);

}  // namespace rtnq
