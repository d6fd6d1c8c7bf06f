#include "core/dtype.h"

#include <array>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace rtnq {
namespace {

struct ElemInfo {
  ElemType type;
  std::string name;
  int size;
};

const std::array<ElemInfo, 16> kElemInfo = {{
    {ElemType::kF64, "F64", 8},
    {ElemType::kF32, "F32", 4},
    {ElemType::kF16, "F16", 2},
    {ElemType::kBF16, "BF16", 2},
    {ElemType::kI64, "I64", 8},
    {ElemType::kI32, "I32", 4},
    {ElemType::kI16, "I16", 2},
    {ElemType::kI8, "I8", 1},
    {ElemType::kU8, "U8", 1},
    {ElemType::kBool, "BOOL", 1},
    {ElemType::kU64, "U64", 8},
    {ElemType::kU32, "U32", 4},
    {ElemType::kU16, "U16", 2},
    {ElemType::kF8E4M3, "F8_E4M3", 1},
    {ElemType::kF8E5M2, "F8_E5M2", 1},
    {ElemType::kF8E8M0, "F8_E8M0", 1},
}};

}  // namespace

int ElemSize(ElemType t) { return kElemInfo[static_cast<int>(t)].size; }

const std::string& ElemTypeName(ElemType t) { return kElemInfo[static_cast<int>(t)].name; }

absl::StatusOr<ElemType> ParseElemType(std::string_view name) {
  for (const ElemInfo& info : kElemInfo) {
    if (info.name == name) return info.type;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype \"", std::string(name),
                   "\" (expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, "
                   "BOOL, F8_E4M3, F8_E5M2, F8_E8M0)"));
}

bool IsQuantizableFloat(ElemType t) {
  return t == ElemType::kF32 || t == ElemType::kF16 || t == ElemType::kBF16;
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  uint32_t u;
  if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    u = sign;
  } else {
    // Subnormal half: value = mant * 2^-24, exactly representable in float32.
    float f = std::ldexp(static_cast<float>(mant), -24);
    return sign ? -f : f;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: infinity
  if (abs >= 0x38800000u) {                       // normal half range
    uint32_t v = abs - (112u << 23);
    v += 0xfffu + ((v >> 13) & 1u);
    return sign | static_cast<uint16_t>(v >> 13);
  }
  // Subnormal (or zero) half: scale to units of 2^-24 and round half to even.
  float a;
  std::memcpy(&a, &abs, 4);
  const float units = std::nearbyint(a * 16777216.0f);  // exact scaling by 2^24
  return sign | static_cast<uint16_t>(units);
}

}  // namespace rtnq
