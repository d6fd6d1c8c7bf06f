// Element types of checkpoint tensors and the exact float conversions the quantizer relies on.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace rtnq {

/// Element type of a tensor, named as safetensors names it. The 8-bit floats are FP8 sources
/// (core/fp8.h decodes them); like the unsigned integers they are never quantized as they are.
enum class ElemType : uint8_t {
  kF64,
  kF32,
  kF16,
  kBF16,
  kI64,
  kI32,
  kI16,
  kI8,
  kU8,
  kBool,
  kU64,
  kU32,
  kU16,
  kF8E4M3,  ///< "F8_E4M3": OCP E4M3 (torch.float8_e4m3fn), no infinities
  kF8E5M2,  ///< "F8_E5M2": OCP E5M2 (torch.float8_e5m2)
  kF8E8M0,  ///< "F8_E8M0": OCP MX scale, a power of two (torch.float8_e8m0fnu)
};

/// Size in bytes of one element.
int ElemSize(ElemType t);
/// The safetensors spelling ("F32", "BF16", ...).
const std::string& ElemTypeName(ElemType t);
/// Parses a safetensors dtype string; InvalidArgument naming the value if unknown.
absl::StatusOr<ElemType> ParseElemType(std::string_view name);
/// True for F32, F16 and BF16: the types rtnq quantizes.
bool IsQuantizableFloat(ElemType t);

/// bfloat16 -> float32, exact.
inline float Bf16ToFloat(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// float32 -> bfloat16, round to nearest even (NaN stays a quiet NaN).
inline uint16_t FloatToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

/// IEEE float16 -> float32, exact (subnormals included).
float HalfToFloat(uint16_t h);
/// float32 -> IEEE float16, round to nearest even, overflow to infinity.
uint16_t FloatToHalf(float f);

}  // namespace rtnq
