// One output tensor of a layout, ready for a safetensors writer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace rtnq {

/// One output tensor, ready for a safetensors writer: little-endian row-major bytes.
struct PackedTensor {
  std::string name;
  ElemType dtype = ElemType::kI32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

}  // namespace rtnq
