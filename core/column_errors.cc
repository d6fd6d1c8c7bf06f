#include "core/column_errors.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "core/io/safetensors_header.h"
#include "core/kernels/kernels.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

// Columns summed by one task: wide enough that each row contributes a few contiguous cache
// lines (the hardware prefetcher follows the row stride), narrow enough to give many tasks.
constexpr int64_t kStripe = 256;

absl::Status ColumnError(const std::string& name, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(TensorPrefix(name), what));
}

// Converts `n` elements of `dtype` at `p` to float32 with the engine's converters (exact: all
// three widen losslessly). `p` need not be aligned: 16-bit rows are copied to `half` first.
void ToFloat(const uint8_t* p, ElemType dtype, int64_t n, const KernelTable& k, uint16_t* half,
             float* out) {
  if (dtype == ElemType::kF32) {
    std::memcpy(out, p, n * sizeof(float));
    return;
  }
  std::memcpy(half, p, n * sizeof(uint16_t));
  (dtype == ElemType::kBF16 ? k.bf16_to_float : k.f16_to_float)(half, n, out);
}

// acc[j] += w[j] * (x[j] - q[j])^2 in double (w omitted: 1) for j < n; a fixed n lets the
// compiler vectorise across columns, which keeps every column's own order of additions.
template <int64_t kN>
void Accumulate(const float* x, const float* q, const float* w, int64_t n, double* acc) {
  const int64_t m = kN > 0 ? kN : n;
  if (w != nullptr) {
    for (int64_t j = 0; j < m; ++j) {
      const double d = static_cast<double>(x[j]) - static_cast<double>(q[j]);
      acc[j] += static_cast<double>(w[j]) * (d * d);
    }
  } else {
    for (int64_t j = 0; j < m; ++j) {
      const double d = static_cast<double>(x[j]) - static_cast<double>(q[j]);
      acc[j] += d * d;
    }
  }
}

absl::Status CheckBytes(const TensorInput& t, size_t bytes, const std::string& what) {
  if (!IsQuantizableFloat(t.dtype)) {
    return ColumnError(
        t.name, absl::StrCat(what, " dtype ", ElemTypeName(t.dtype), " is not F32, F16 or BF16"));
  }
  RTNQ_ASSIGN_OR_RETURN(const int64_t elements, ValidateTensorInput(t));
  if (static_cast<uint64_t>(elements) * ElemSize(t.dtype) != bytes) {
    return ColumnError(t.name,
                       absl::StrCat(what, " has ", bytes, " bytes, shape ", ShapeString(t.shape),
                                    " needs ", elements * ElemSize(t.dtype)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<double>> ColumnSquaredErrors(
    const TensorInput& input, absl::Span<const uint8_t> fake,
    const std::optional<TensorInput>& element_weights, int64_t slices, const Engine& engine) {
  if (input.shape.empty()) return ColumnError(input.name, "a 0-D tensor has no columns");
  RTNQ_RETURN_IF_ERROR(CheckBytes(input, input.data.size(), "input"));
  RTNQ_RETURN_IF_ERROR(CheckBytes(input, fake.size(), "fake-quantized output"));
  if (element_weights.has_value()) {
    const TensorInput& w = *element_weights;
    RTNQ_RETURN_IF_ERROR(CheckBytes(w, w.data.size(), "weights"));
    if (w.shape != input.shape) {
      return ColumnError(input.name,
                         absl::StrCat("weights of shape ", ShapeString(w.shape),
                                      " for a tensor of shape ", ShapeString(input.shape)));
    }
  }
  const int64_t n = input.shape.back();
  int64_t elements = 1;
  for (int64_t d : input.shape) elements *= d;
  const int64_t rows = n == 0 ? 0 : elements / n;
  if (slices < 1 || (rows > 0 && rows % slices != 0)) {
    return ColumnError(input.name,
                       absl::StrCat(slices, " slices do not divide its ", rows, " rows"));
  }
  std::vector<double> sums(static_cast<size_t>(slices * n), 0.0);
  if (rows == 0 || n == 0) return sums;

  const int64_t rows_per_slice = rows / slices;
  const int64_t stripes = (n + kStripe - 1) / kStripe;
  const int esize = ElemSize(input.dtype);
  const TensorInput* w = element_weights.has_value() ? &*element_weights : nullptr;
  const int wsize = w != nullptr ? ElemSize(w->dtype) : 0;
  RTNQ_RETURN_IF_ERROR(engine.ParallelFor(slices * stripes, [&](int64_t task) {
    const int64_t slice = task / stripes;
    const int64_t c0 = (task % stripes) * kStripe;
    const int64_t width = std::min(kStripe, n - c0);
    std::array<double, kStripe> acc{};
    alignas(64) std::array<float, kStripe> x, q, wt;
    alignas(64) std::array<uint16_t, kStripe> half;
    const KernelTable& k = engine.kernels();
    for (int64_t r = slice * rows_per_slice; r < (slice + 1) * rows_per_slice; ++r) {
      const int64_t at = r * n + c0;
      ToFloat(input.data.data() + at * esize, input.dtype, width, k, half.data(), x.data());
      ToFloat(fake.data() + at * esize, input.dtype, width, k, half.data(), q.data());
      const float* weights = nullptr;
      if (w != nullptr) {
        ToFloat(w->data.data() + at * wsize, w->dtype, width, k, half.data(), wt.data());
        weights = wt.data();
      }
      if (width == kStripe) {
        Accumulate<kStripe>(x.data(), q.data(), weights, width, acc.data());
      } else {
        Accumulate<0>(x.data(), q.data(), weights, width, acc.data());
      }
    }
    std::copy(acc.begin(), acc.begin() + width, sums.begin() + slice * n + c0);
  }));
  return sums;
}

}  // namespace rtnq
