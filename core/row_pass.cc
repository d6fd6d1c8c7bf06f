#include "core/row_pass.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/kernels/target_clones.h"
#include "core/tensor_text.h"

namespace rtnq::internal {

void RowScratch::Reserve(int64_t cols) {
  if (static_cast<int64_t>(x.size()) < cols) {
    x.resize(cols);
    deq.resize(cols);
    back.resize(cols);
    codes.resize(cols);
    half.resize(cols);
  }
}

RowScratch& ThreadScratch(int64_t cols) {
  thread_local RowScratch scratch;
  scratch.Reserve(cols);
  return scratch;
}

RowPass RowPass::For(const QuantConfig& config, const KernelTable& kernels, int64_t cols,
                     ElemType in_dtype, ElemType out_dtype) {
  RowPass pass;
  pass.kernels = &kernels;
  pass.params = MakeKernelParams(config);
  pass.quantile = static_cast<float>(config.quantile);
  pass.cols = cols;
  pass.group_size = EffectiveGroupSize(config.group_size, cols);
  pass.groups_per_row = GroupsPerRow(cols, pass.group_size);
  pass.in_dtype = in_dtype;
  pass.out_dtype = out_dtype;
  return pass;
}

const float* RowPass::AsFloat(const uint8_t* in, RowScratch& scratch) const {
  // safetensors does not promise aligned offsets; misaligned rows are copied first.
  const auto addr = reinterpret_cast<uintptr_t>(in);
  switch (in_dtype) {
    case ElemType::kF32:
      if (addr % alignof(float) != 0) {
        std::memcpy(scratch.x.data(), in, cols * sizeof(float));
        return scratch.x.data();
      }
      return reinterpret_cast<const float*>(in);
    case ElemType::kBF16:
    case ElemType::kF16: {
      const uint16_t* h = reinterpret_cast<const uint16_t*>(in);
      if (addr % alignof(uint16_t) != 0) {
        std::memcpy(scratch.half.data(), in, cols * sizeof(uint16_t));
        h = scratch.half.data();
      }
      (in_dtype == ElemType::kBF16 ? kernels->bf16_to_float : kernels->f16_to_float)(
          h, cols, scratch.x.data());
      return scratch.x.data();
    }
    default:
      return nullptr;  // callers validate dtypes first
  }
}

namespace {

// Branch-free over the whole row so that each clone vectorizes it with its widest registers;
// the exact index is looked for only when there is one.
RTNQ_X86_CLONES bool AnyNonFinite(const float* x, int64_t n) {
  uint32_t any = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    any |= static_cast<uint32_t>((u & 0x7f800000u) == 0x7f800000u);
  }
  return any != 0;
}

}  // namespace

int64_t RowPass::FirstNonFinite(const float* x, int64_t n) {
  if (!AnyNonFinite(x, n)) return -1;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, x + i, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return i;
  }
  return -1;
}

void RowPass::Quantize(const float* x, uint8_t* codes, float* scales, int32_t* zeros,
                       float* deq) const {
  kernels->quant_row(x, cols, group_size, params, quantile, codes, scales, zeros, deq);
}

RowErrorStats RowPass::Emit(const float* x, const float* deq, uint8_t* fake,
                            RowScratch& scratch) const {
  if (out_dtype == ElemType::kF32) {
    if (fake) std::memcpy(fake, deq, cols * sizeof(float));
    return ComputeRowError(x, deq, cols);
  }
  // 16-bit outputs: the values a user gets are the rounded ones, so measure those.
  uint16_t* out = fake ? reinterpret_cast<uint16_t*>(fake) : scratch.half.data();
  if (out_dtype == ElemType::kBF16) {
    kernels->float_to_bf16(deq, cols, out);
    kernels->bf16_to_float(out, cols, scratch.back.data());
  } else {
    kernels->float_to_f16(deq, cols, out);
    kernels->f16_to_float(out, cols, scratch.back.data());
  }
  return ComputeRowError(x, scratch.back.data(), cols);
}

void FirstBad::Record(int64_t index) {
  int64_t cur = index_.load(std::memory_order_relaxed);
  while (index < cur && !index_.compare_exchange_weak(cur, index)) {
  }
}

absl::Status CheckScales(const std::string& name, const float* scales, int64_t rows, int64_t groups,
                         int64_t first_row) {
  for (int64_t i = 0; i < rows * groups; ++i) {
    if (!std::isfinite(scales[i]) || scales[i] == 0.0f) {
      return absl::InvalidArgumentError(
          absl::StrCat(TensorPrefix(name), "group ", i % groups, " of row ", first_row + i / groups,
                       " has scale ", scales[i],
                       ": its values are too close to the float32 limits to quantize"));
    }
  }
  return absl::OkStatus();
}

TensorMetrics MetricsFromRows(const std::vector<RowErrorStats>& rows, int64_t elements,
                              int64_t groups, float clip_ratio) {
  RowErrorStats total;
  for (const RowErrorStats& r : rows) {
    total.sse += r.sse;
    total.sum_sq += r.sum_sq;
    total.max_abs = std::max(total.max_abs, r.max_abs);
  }
  TensorMetrics m;
  m.elements = elements;
  m.groups = groups;
  m.mse = total.sse / static_cast<double>(elements);
  m.max_abs_error = total.max_abs;
  m.snr_db = total.sse == 0 ? std::numeric_limits<double>::infinity()
                            : 10.0 * std::log10(total.sum_sq / total.sse);
  m.clip_ratio = clip_ratio;
  return m;
}

}  // namespace rtnq::internal
