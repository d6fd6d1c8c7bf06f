#include "core/fp8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/io/safetensors_header.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

// Most checkpoints use 128x128 blocks (DeepSeek's default); MX formats scale 32 elements of a
// row with one E8M0 exponent.
constexpr std::array<int64_t, 2> kDefaultBlock = {128, 128};
constexpr std::array<int64_t, 2> kMxBlock = {1, 32};

// Rows decoded per parallel block: about 1 MiB of float32 output per task.
constexpr int64_t kBlockBytes = 1 << 20;

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// A minifloat with `e` exponent bits, `m` mantissa bits and bias 2^(e-1)-1 as float32 bits;
// the top exponent code is left to the caller (the formats differ there).
float DecodeMinifloat(uint8_t code, int e, int m) {
  const uint32_t sign = static_cast<uint32_t>(code >> 7) << 31;
  const uint32_t exp = (code >> m) & ((1u << e) - 1);
  const uint32_t mant = code & ((1u << m) - 1);
  const int bias = (1 << (e - 1)) - 1;
  if (exp != 0) {
    return FromBits(sign | (static_cast<uint32_t>(exp - bias + 127) << 23) | (mant << (23 - m)));
  }
  // Subnormal: mant * 2^(1 - bias - m), exact in float32.
  const float f = std::ldexp(static_cast<float>(mant), 1 - bias - m);
  return sign ? -f : f;
}

struct Lut {
  float v[256];
};

Lut MakeLut(float (*decode)(uint8_t)) {
  Lut lut;
  for (int c = 0; c < 256; ++c) lut.v[c] = decode(static_cast<uint8_t>(c));
  return lut;
}

const Lut& LutOf(ElemType t) {
  static const Lut e4m3 = MakeLut(F8E4M3ToFloat);
  static const Lut e5m2 = MakeLut(F8E5M2ToFloat);
  return t == ElemType::kF8E4M3 ? e4m3 : e5m2;
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

int64_t Product(absl::Span<const int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

bool IsScaleType(ElemType t) {
  return t == ElemType::kF32 || t == ElemType::kF16 || t == ElemType::kBF16 ||
         t == ElemType::kF8E8M0;
}

}  // namespace

float F8E4M3ToFloat(uint8_t code) {
  if ((code & 0x7f) == 0x7f) return std::numeric_limits<float>::quiet_NaN();
  return DecodeMinifloat(code, 4, 3);
}

float F8E5M2ToFloat(uint8_t code) {
  if ((code & 0x7c) == 0x7c) {
    if ((code & 0x03) != 0) return std::numeric_limits<float>::quiet_NaN();
    return (code & 0x80) ? -std::numeric_limits<float>::infinity()
                         : std::numeric_limits<float>::infinity();
  }
  return DecodeMinifloat(code, 5, 2);
}

float F8E8M0ToFloat(uint8_t code) {
  if (code == 0xff) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(code) - 127);  // 2^-127 is a float32 subnormal
}

uint8_t FloatToF8E4M3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  if (std::isnan(f)) return sign | 0x7f;
  const float a = std::fabs(f);
  // Positive finite codes 0x00..0x7E decode to increasing values: find the two around `a`.
  const float* v = LutOf(ElemType::kF8E4M3).v;
  const float* hi = std::lower_bound(v, v + 0x7f, a);
  if (hi == v + 0x7f) return sign | 0x7e;  // beyond 448: saturate
  uint8_t code = static_cast<uint8_t>(hi - v);
  if (code > 0 && *hi != a) {
    const float up = *hi - a, down = a - v[code - 1];
    if (down < up || (down == up && (code & 1) != 0)) --code;  // ties to the even mantissa
  }
  return sign | code;
}

bool IsFp8Weight(ElemType t) { return t == ElemType::kF8E4M3 || t == ElemType::kF8E5M2; }

std::vector<std::string> Fp8ScaleNames(std::string_view weight_name) {
  const std::string w(weight_name);
  return {w + "_scale_inv", w + "_scale"};
}

absl::StatusOr<Fp8ScaleLayout> RecognizeFp8Scale(std::string_view weight_name,
                                                 ElemType weight_dtype,
                                                 const std::vector<int64_t>& weight_shape,
                                                 std::string_view scale_name, ElemType scale_dtype,
                                                 const std::vector<int64_t>& scale_shape,
                                                 std::optional<std::array<int64_t, 2>> block) {
  const std::string prefix =
      absl::StrCat("FP8 tensor \"", std::string(weight_name), "\" ", ElemTypeName(weight_dtype),
                   " ", ShapeString(weight_shape), " with scale \"", std::string(scale_name), "\" ",
                   ElemTypeName(scale_dtype), " ", ShapeString(scale_shape));
  if (!IsFp8Weight(weight_dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ": not an F8_E4M3/F8_E5M2 weight"));
  }
  if (weight_shape.size() < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ": an FP8 weight must have at least 2 dimensions"));
  }
  if (!IsScaleType(scale_dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ": scale dtype must be F32, F16, BF16 or F8_E8M0"));
  }
  for (int64_t d : weight_shape) {
    if (d <= 0) return absl::InvalidArgumentError(absl::StrCat(prefix, ": empty weight"));
  }
  Fp8ScaleLayout l;
  l.scale_name = std::string(scale_name);
  l.scale_dtype = scale_dtype;
  const size_t n = weight_shape.size();
  const std::vector<int64_t> lead(weight_shape.begin(), weight_shape.end() - 2);
  l.batch = Product(lead);
  l.rows = weight_shape[n - 2];
  l.cols = weight_shape[n - 1];
  auto with_lead = [&](std::vector<int64_t> tail) {
    std::vector<int64_t> s = lead;
    s.insert(s.end(), tail.begin(), tail.end());
    return s;
  };
  std::array<int64_t, 2> b =
      block.value_or(scale_dtype == ElemType::kF8E8M0 ? kMxBlock : kDefaultBlock);
  const std::vector<int64_t> block_shape = {CeilDiv(l.rows, b[0]), CeilDiv(l.cols, b[1])};

  if (Product(scale_shape) == 1 && scale_shape.size() <= n) {
    l.block_rows = l.rows;
    l.block_cols = l.cols;
    l.description = "per tensor";
  } else if (b[0] > 0 && b[1] > 0 && scale_shape == with_lead(block_shape)) {
    l.block_rows = b[0];
    l.block_cols = b[1];
    l.scale_rows = block_shape[0];
    l.scale_cols = block_shape[1];
    l.per_batch = l.batch > 1;
    l.description = absl::StrCat(b[0], "x", b[1], " blocks");
  } else if (scale_shape == with_lead({l.rows, 1}) || scale_shape == with_lead({l.rows})) {
    l.block_cols = l.cols;
    l.scale_rows = l.rows;
    l.per_batch = l.batch > 1;
    l.description = "per output channel";
  } else if (l.batch > 1 && (scale_shape == lead || scale_shape == with_lead({1, 1}))) {
    l.block_rows = l.rows;
    l.block_cols = l.cols;
    l.per_batch = true;
    l.description = "per matrix";
  } else {
    std::vector<std::string> accepted = {"[1]", ShapeString(with_lead({l.rows, 1})),
                                         ShapeString(with_lead(block_shape))};
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ": unknown scale layout (accepted: ", absl::StrJoin(accepted, ", "),
                     " for per tensor, per output channel, ", b[0], "x", b[1],
                     " blocks; the block size comes from config.json quantization_config "
                     "weight_block_size or block_structure)"));
  }
  return l;
}

float ScaleElementToFloat(const uint8_t* data, ElemType dtype, int64_t i) {
  switch (dtype) {
    case ElemType::kF16:
    case ElemType::kBF16: {
      uint16_t h;
      std::memcpy(&h, data + 2 * i, 2);
      return dtype == ElemType::kF16 ? HalfToFloat(h) : Bf16ToFloat(h);
    }
    case ElemType::kF8E8M0:
      return F8E8M0ToFloat(data[i]);
    default: {
      float f;
      std::memcpy(&f, data + 4 * i, 4);
      return f;
    }
  }
}

void DequantizeFp8Rows(ElemType weight_dtype, const uint8_t* weight, const Fp8ScaleLayout& l,
                       const uint8_t* scale, int64_t first_row, int64_t num_rows, float* out) {
  const float* lut = LutOf(weight_dtype).v;
  for (int64_t k = 0; k < num_rows; ++k) {
    const int64_t r = first_row + k;
    const int64_t b = l.per_batch ? r / l.rows : 0;
    const int64_t srow = (b * l.scale_rows + (r % l.rows) / l.block_rows) * l.scale_cols;
    const uint8_t* src = weight + k * l.cols;
    float* dst = out + k * l.cols;
    for (int64_t j0 = 0; j0 < l.cols; j0 += l.block_cols) {
      const float s = ScaleElementToFloat(scale, l.scale_dtype, srow + j0 / l.block_cols);
      const int64_t j1 = std::min(l.cols, j0 + l.block_cols);
      for (int64_t j = j0; j < j1; ++j) dst[j] = lut[src[j]] * s;
    }
  }
}

absl::StatusOr<std::vector<float>> DequantizeFp8(
    std::string_view weight_name, ElemType weight_dtype, absl::Span<const uint8_t> weight,
    const Fp8ScaleLayout& l, absl::Span<const uint8_t> scale, const Engine& engine) {
  const int64_t total_rows = l.batch * l.rows;
  const uint64_t scale_count =
      static_cast<uint64_t>(l.per_batch ? l.batch : 1) * l.scale_rows * l.scale_cols;
  if (!IsFp8Weight(weight_dtype) || weight.size() != static_cast<uint64_t>(total_rows * l.cols) ||
      scale.size() != scale_count * ElemSize(l.scale_dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FP8 tensor \"", std::string(weight_name), "\": ", weight.size(), " weight bytes and ",
        scale.size(), " bytes of scale \"", l.scale_name, "\" do not match ", l.batch, "x", l.rows,
        "x", l.cols, " ", ElemTypeName(weight_dtype), " with ", l.description));
  }
  std::vector<float> out(static_cast<size_t>(total_rows * l.cols));
  const int64_t per_block = std::max<int64_t>(1, kBlockBytes / (4 * l.cols));
  const int64_t blocks = CeilDiv(total_rows, per_block);
  absl::Status s = engine.ParallelFor(blocks, [&](int64_t blk) {
    const int64_t r0 = blk * per_block, r1 = std::min(total_rows, r0 + per_block);
    DequantizeFp8Rows(weight_dtype, weight.data() + r0 * l.cols, l, scale.data(), r0, r1 - r0,
                      out.data() + r0 * l.cols);
  });
  if (!s.ok()) return s;
  return out;
}

}  // namespace rtnq
