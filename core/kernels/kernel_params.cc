#include "core/kernels/kernel_params.h"

#include <initializer_list>

namespace rtnq {
namespace {

Float4Table BuildTable(std::initializer_list<double> values, std::initializer_list<int> codes) {
  Float4Table t{};
  t.size = static_cast<int>(values.size());
  int i = 0;
  for (double v : values) t.values[i++] = static_cast<float>(v);
  i = 0;
  for (int c : codes) t.codes[i++] = static_cast<int8_t>(c);
  auto it = values.begin();
  for (i = 0; i + 1 < t.size; ++i, ++it) {
    // The reference computes midpoints from Python floats (double) and compares in float32.
    t.midpoints[i] = static_cast<float>((*it + *(it + 1)) / 2.0);
  }
  t.max_value = t.values[t.size - 1];
  for (i = 0; i < t.size; ++i) {
    if (t.values[i] == 0.0f) t.zero_index = i;
    t.value_by_nibble[t.codes[i] & 15] = t.values[i];
  }
  return t;
}

const Float4Table kNf4 =
    BuildTable({-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
                -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
                0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
                0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0},
               {7, 1, 2, 3, 4, 5, 6, 0, -8, -7, -6, -5, -4, -3, -2, -1});

const Float4Table kFp4 =
    BuildTable({-12, -8, -6, -4, -3, -2, -0.0625, 0, 0.0625, 2, 3, 4, 6, 8, 12},
               {-5, -6, -3, -4, -1, -2, -7, 0, 1, 6, 7, 4, 5, 2, 3});

const Float4Table kFp4E2M1 =
    BuildTable({-6, -4, -3, -2, -1.5, -1, -0.0625, 0, 0.0625, 1, 1.5, 2, 3, 4, 6},
               {-1, -2, -3, -4, -5, -6, -7, 0, 1, 2, 3, 4, 5, 6, 7});

}  // namespace

const Float4Table* TableFor(QuantDtype dtype) {
  switch (dtype) {
    case QuantDtype::kNf4:
      return &kNf4;
    case QuantDtype::kFp4:
      return &kFp4;
    case QuantDtype::kFp4E2M1:
      return &kFp4E2M1;
    default:
      return nullptr;
  }
}

KernelParams MakeKernelParams(const QuantConfig& cfg) {
  KernelParams p;
  p.bits = cfg.bits;
  if (cfg.is_float4()) {
    p.mode = KernelMode::kTable;
    p.table = TableFor(cfg.dtype);
    return p;
  }
  const int b = cfg.bits;
  if (cfg.scheme == Scheme::kAsym) {
    p.mode = KernelMode::kAsym;
    p.maxq = static_cast<float>((1 << b) - 1);
    p.minq = 0.0f;
    return p;
  }
  p.mode = cfg.enable_full_range ? KernelMode::kSymFullRange : KernelMode::kSym;
  if (b == 1) {
    // The reference's 1-bit sym range is {0, 1}: negative weights become 0.
    p.maxq = 1.0f;
    p.minq = 0.0f;
  } else {
    p.maxq = static_cast<float>((1 << (b - 1)) - 1);
    p.minq = -static_cast<float>(1 << (b - 1));
  }
  p.full_range_divisor = static_cast<float>(1 << (b - 1));
  return p;
}

}  // namespace rtnq
