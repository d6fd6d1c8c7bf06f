#include "core/quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/clip_search.h"
#include "core/double_quant.h"
#include "core/io/huge_pages.h"
#include "core/row_pass.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

using internal::FirstBad;
using internal::RowPass;
using internal::RowScratch;
using internal::RowsPerBlock;
using internal::ThreadScratch;

// Cache-blocked transpose of a [r, c] matrix of T into [c, r].
template <typename T>
void Transpose(const T* src, int64_t r, int64_t c, T* dst) {
  constexpr int64_t kTile = 32;
  for (int64_t i0 = 0; i0 < r; i0 += kTile) {
    for (int64_t j0 = 0; j0 < c; j0 += kTile) {
      const int64_t i1 = std::min(r, i0 + kTile), j1 = std::min(c, j0 + kTile);
      for (int64_t i = i0; i < i1; ++i) {
        for (int64_t j = j0; j < j1; ++j) dst[j * r + i] = src[i * c + j];
      }
    }
  }
}

void TransposeBytes(const std::vector<uint8_t>& src, int elem, int64_t r, int64_t c,
                    std::vector<uint8_t>& dst) {
  dst.resize(src.size());
  switch (elem) {
    case 1:
      Transpose(src.data(), r, c, dst.data());
      break;
    case 2:
      Transpose(reinterpret_cast<const uint16_t*>(src.data()), r, c,
                reinterpret_cast<uint16_t*>(dst.data()));
      break;
    default:
      Transpose(reinterpret_cast<const uint32_t*>(src.data()), r, c,
                reinterpret_cast<uint32_t*>(dst.data()));
  }
}

float ElementAsFloat(const uint8_t* p, ElemType t) {
  uint16_t h;
  switch (t) {
    case ElemType::kBF16:
      std::memcpy(&h, p, 2);
      return Bf16ToFloat(h);
    case ElemType::kF16:
      std::memcpy(&h, p, 2);
      return HalfToFloat(h);
    default: {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
  }
}

// The matrix actually quantized: the tensor's 2-D view, or its transpose for group_dim 0.
struct WorkMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  ElemType dtype = ElemType::kF32;
  std::vector<float> transposed;  // owns the data for group_dim 0
  int64_t row_bytes() const { return cols * ElemSize(dtype); }
};

QuantizedTensor PassThrough(const TensorInput& input, const QuantConfig& config,
                            const QuantizeOptions& options, std::string reason, int64_t elements) {
  QuantizedTensor out;
  out.name = input.name;
  out.dtype = input.dtype;
  out.shape = input.shape;
  out.config = config;
  out.quantized = false;
  out.skip_reason = std::move(reason);
  if (options.fake_quant) out.fake.assign(input.data.begin(), input.data.end());
  out.metrics.elements = elements;
  out.metrics.snr_db = std::numeric_limits<double>::infinity();
  return out;
}

}  // namespace

int64_t QuantizedTensor::scale_rows() const {
  return config.group_dim == 0 ? GroupsPerRow(rows, group_size) : rows;
}
int64_t QuantizedTensor::scale_cols() const {
  return config.group_dim == 0 ? cols : GroupsPerRow(cols, group_size);
}

static absl::StatusOr<int64_t> ValidateShape(const std::string& name, ElemType dtype,
                                             const std::vector<int64_t>& shape) {
  if (name.empty()) return absl::InvalidArgumentError("tensor name is empty");
  int64_t elements = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t d = shape[i];
    if (d < 0) {
      return TensorError(
          name, absl::StatusCode::kInvalidArgument,
          absl::StrCat("dimension ", i, " of shape ", ShapeString(shape), " is negative"));
    }
    if (__builtin_mul_overflow(elements, d, &elements)) {
      return TensorError(
          name, absl::StatusCode::kInvalidArgument,
          absl::StrCat("element count of shape ", ShapeString(shape), " overflows 64 bits"));
    }
  }
  int64_t bytes;
  if (__builtin_mul_overflow(elements, int64_t{ElemSize(dtype)}, &bytes)) {
    return TensorError(
        name, absl::StatusCode::kInvalidArgument,
        absl::StrCat("byte size of shape ", ShapeString(shape), " overflows 64 bits"));
  }
  return elements;
}

absl::StatusOr<int64_t> ValidateTensorInput(const TensorInput& input) {
  RTNQ_ASSIGN_OR_RETURN(const int64_t elements,
                        ValidateShape(input.name, input.dtype, input.shape));
  const int64_t bytes = elements * ElemSize(input.dtype);
  if (static_cast<int64_t>(input.data.size()) != bytes) {
    return TensorError(
        input.name, absl::StatusCode::kInvalidArgument,
        absl::StrCat("shape ", ShapeString(input.shape), " with dtype ", ElemTypeName(input.dtype),
                     " needs ", bytes, " bytes, got ", input.data.size()));
  }
  return elements;
}

absl::StatusOr<TensorPlan> PlanTensor(const std::string& name, ElemType dtype,
                                      const std::vector<int64_t>& shape, const QuantConfig& config,
                                      const QuantizeOptions& options) {
  TensorPlan plan;
  RTNQ_ASSIGN_OR_RETURN(plan.elements, ValidateShape(name, dtype, shape));
  RTNQ_RETURN_IF_ERROR(WithTensorName(name, ValidateConfig(config)));
  if (config.dtype == QuantDtype::kFp32) {
    plan.skip_reason = "config dtype is fp32";
  } else if (shape.empty()) {
    plan.skip_reason = "0-D tensor (scalar)";
  } else if (shape.size() == 1 && !options.quantize_1d) {
    plan.skip_reason = "1-D tensor (bias or norm)";
  }
  if (!plan.skip_reason.empty()) return plan;
  if (!IsQuantizableFloat(dtype)) {
    return TensorError(name, absl::StatusCode::kInvalidArgument,
                       absl::StrCat("dtype ", ElemTypeName(dtype),
                                    " cannot be quantized (only F32, F16 and BF16 can)"));
  }
  if (plan.elements == 0) {
    return TensorError(
        name, absl::StatusCode::kInvalidArgument,
        absl::StrCat("shape ", ShapeString(shape), " has no elements: nothing to quantize"));
  }
  plan.quantize = true;
  plan.rows = shape.size() == 1 ? 1 : shape[0];
  plan.cols = plan.elements / plan.rows;
  plan.group_size = EffectiveGroupSize(config, plan.rows, plan.cols);
  plan.scale_grid = ScaleGridOf(config, plan.rows, plan.cols);
  return plan;
}

absl::StatusOr<QuantizedTensor> QuantizeTensor(const TensorInput& input, const QuantConfig& config,
                                               const QuantizeOptions& options,
                                               const Engine& engine) {
  const auto start = std::chrono::steady_clock::now();
  RTNQ_ASSIGN_OR_RETURN(const int64_t elements, ValidateTensorInput(input));
  RTNQ_ASSIGN_OR_RETURN(const TensorPlan plan,
                        PlanTensor(input.name, input.dtype, input.shape, config, options));
  if (!plan.quantize) return PassThrough(input, config, options, plan.skip_reason, elements);

  QuantizedTensor out;
  out.name = input.name;
  out.dtype = input.dtype;
  out.shape = input.shape;
  out.config = config;
  out.quantized = true;
  out.rows = plan.rows;
  out.cols = plan.cols;

  // group_dim 0 quantizes the transpose, whose rows are the tensor's columns.
  const bool transposed = config.group_dim == 0;
  WorkMatrix m;
  if (transposed) {
    m.rows = out.cols;
    m.cols = out.rows;
    m.dtype = ElemType::kF32;
    m.transposed.resize(elements);
    // Upcast row by row with the dispatched converters, then one cache-blocked transpose.
    std::vector<float> upcast;
    const float* src = reinterpret_cast<const float*>(input.data.data());
    if (input.dtype != ElemType::kF32 ||
        reinterpret_cast<uintptr_t>(input.data.data()) % alignof(float) != 0) {
      upcast.resize(elements);
      internal::RowPass conv;
      conv.kernels = &engine.kernels();
      conv.cols = out.cols;
      conv.in_dtype = input.dtype;
      const int64_t row_bytes = out.cols * ElemSize(input.dtype);
      for (int64_t r = 0; r < out.rows; ++r) {
        RowScratch& scratch = ThreadScratch(out.cols);
        const float* x = conv.AsFloat(input.data.data() + r * row_bytes, scratch);
        std::memcpy(upcast.data() + r * out.cols, x, out.cols * sizeof(float));
      }
      src = upcast.data();
    }
    Transpose(src, out.rows, out.cols, m.transposed.data());
    m.data = reinterpret_cast<const uint8_t*>(m.transposed.data());
  } else {
    m.rows = out.rows;
    m.cols = out.cols;
    m.dtype = input.dtype;
    m.data = input.data.data();
  }

  RowPass pass = RowPass::For(config, engine.kernels(), m.cols, m.dtype, input.dtype);
  out.group_size = pass.group_size;

  FirstBad bad;
  auto nonfinite_result = [&]() -> absl::StatusOr<QuantizedTensor> {
    const int64_t wr = bad.index() / m.cols, wc = bad.index() % m.cols;
    const int64_t r = transposed ? wc : wr, c = transposed ? wr : wc;
    const float v =
        ElementAsFloat(input.data.data() + (r * out.cols + c) * ElemSize(input.dtype), input.dtype);
    const std::string where = absl::StrCat("element [", r, ", ", c, "] is ", v);
    if (options.pass_nonfinite) {
      return PassThrough(input, config, options, absl::StrCat("non-finite values (", where, ")"),
                         elements);
    }
    return TensorError(input.name, absl::StatusCode::kInvalidArgument,
                       absl::StrCat(where,
                                    "; NaN/Inf weights cannot be quantized (ask to pass "
                                    "such tensors through to keep them unquantized)"));
  };

  if (config.enable_mse_search) {
    RTNQ_ASSIGN_OR_RETURN(pass.quantile, internal::SearchClipRatio(pass, m.data, m.rows, engine,
                                                                   options.cancel, bad));
    if (bad.found()) return nonfinite_result();
  }

  const bool dq = config.double_quant();
  const bool keep_codes = options.codes || dq;
  const bool asym = pass.params.mode == KernelMode::kAsym;
  const int64_t G = pass.groups_per_row;
  const int out_esize = ElemSize(input.dtype);
  std::vector<uint8_t> codes;
  ResizeInHugePages(codes, keep_codes ? elements : 0);
  std::vector<float> scales(m.rows * G);
  std::vector<int32_t> zeros(asym ? m.rows * G : 0);
  // Fake output in the work layout: the result itself unless it must be transposed back.
  std::vector<uint8_t> work_fake_storage;
  std::vector<uint8_t>& work_fake = transposed ? work_fake_storage : out.fake;
  if (options.fake_quant) ResizeInHugePages(work_fake, elements * out_esize);
  std::vector<RowErrorStats> stats(m.rows);

  // Dequantized rows become fake output and metrics here (after double quant when enabled).
  auto emit_row = [&](int64_t r, const float* x, const float* deq, RowScratch& scratch) {
    uint8_t* fake = options.fake_quant ? work_fake.data() + r * m.cols * out_esize : nullptr;
    stats[r] = pass.Emit(x, deq, fake, scratch);
  };
  const int64_t per_block = RowsPerBlock(m.cols);
  const int64_t blocks = (m.rows + per_block - 1) / per_block;
  RTNQ_RETURN_IF_ERROR(engine.ParallelFor(
      blocks,
      [&](int64_t b) {
        RowScratch& scratch = ThreadScratch(m.cols);
        const int64_t end = std::min(m.rows, (b + 1) * per_block);
        for (int64_t r = b * per_block; r < end; ++r) {
          const float* x = pass.AsFloat(m.data + r * m.row_bytes(), scratch);
          if (int64_t c = RowPass::FirstNonFinite(x, m.cols); c >= 0) {
            bad.Record(r * m.cols + c);
            continue;
          }
          uint8_t* row_codes = keep_codes ? codes.data() + r * m.cols : scratch.codes.data();
          pass.Quantize(x, row_codes, scales.data() + r * G, asym ? zeros.data() + r * G : nullptr,
                        scratch.deq.data());
          if (!dq) emit_row(r, x, scratch.deq.data(), scratch);
        }
      },
      options.cancel));
  if (bad.found()) return nonfinite_result();

  if (pass.params.mode != KernelMode::kTable) {
    RTNQ_RETURN_IF_ERROR(internal::CheckScales(input.name, scales.data(), m.rows, G, 0));
  }

  if (dq) {
    DoubleQuantizeScales(config, engine.kernels(), scales);
    RTNQ_RETURN_IF_ERROR(engine.ParallelFor(
        blocks,
        [&](int64_t b) {
          RowScratch& scratch = ThreadScratch(m.cols);
          const int64_t end = std::min(m.rows, (b + 1) * per_block);
          for (int64_t r = b * per_block; r < end; ++r) {
            const float* x = pass.AsFloat(m.data + r * m.row_bytes(), scratch);
            pass.kernels->dequant_row(codes.data() + r * m.cols, m.cols, pass.group_size,
                                      pass.params, scales.data() + r * G,
                                      asym ? zeros.data() + r * G : nullptr, scratch.deq.data());
            emit_row(r, x, scratch.deq.data(), scratch);
          }
        },
        options.cancel));
  }

  if (transposed) {
    if (options.fake_quant) TransposeBytes(work_fake_storage, out_esize, m.rows, m.cols, out.fake);
    if (options.codes) {
      TransposeBytes(codes, 1, m.rows, m.cols, out.codes);
      out.scales.resize(scales.size());
      Transpose(scales.data(), m.rows, G, out.scales.data());
      if (asym) {
        out.zeros.resize(zeros.size());
        Transpose(zeros.data(), m.rows, G, out.zeros.data());
      }
    }
  } else if (options.codes) {
    out.codes = std::move(codes);
    out.scales = std::move(scales);
    out.zeros = std::move(zeros);
  }

  out.metrics = internal::MetricsFromRows(stats, elements, m.rows * G, pass.quantile);
  out.config.quantile = pass.quantile;
  out.metrics.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

absl::StatusOr<std::vector<float>> DequantizeCodes(const QuantizedTensor& q, const Engine& engine) {
  if (!q.quantized) {
    return TensorError(q.name, absl::StatusCode::kFailedPrecondition, "tensor was not quantized");
  }
  const int64_t n = q.rows * q.cols;
  const KernelParams params = MakeKernelParams(q.config);
  const bool asym = params.mode == KernelMode::kAsym;
  const int64_t expect_scales = q.scale_rows() * q.scale_cols();
  if (static_cast<int64_t>(q.codes.size()) != n ||
      static_cast<int64_t>(q.scales.size()) != expect_scales ||
      (asym && static_cast<int64_t>(q.zeros.size()) != expect_scales)) {
    return TensorError(q.name, absl::StatusCode::kInvalidArgument,
                       absl::StrCat("codes/scales/zeros sizes ", q.codes.size(), "/",
                                    q.scales.size(), "/", q.zeros.size(), " do not match [", q.rows,
                                    ", ", q.cols, "] with group size ", q.group_size));
  }
  // Work in the layout that was quantized so the same dequant kernel applies.
  const bool transposed = q.config.group_dim == 0;
  const int64_t R = transposed ? q.cols : q.rows, C = transposed ? q.rows : q.cols;
  const int64_t G = GroupsPerRow(C, q.group_size);
  std::vector<uint8_t> codes_t;
  std::vector<float> scales_t;
  std::vector<int32_t> zeros_t;
  const uint8_t* codes = q.codes.data();
  const float* scales = q.scales.data();
  const int32_t* zeros = asym ? q.zeros.data() : nullptr;
  if (transposed) {
    TransposeBytes(q.codes, 1, q.rows, q.cols, codes_t);
    scales_t.resize(q.scales.size());
    Transpose(q.scales.data(), G, R, scales_t.data());
    codes = codes_t.data();
    scales = scales_t.data();
    if (asym) {
      zeros_t.resize(q.zeros.size());
      Transpose(q.zeros.data(), G, R, zeros_t.data());
      zeros = zeros_t.data();
    }
  }
  std::vector<float> work(n);
  const int64_t per_block = RowsPerBlock(C);
  RTNQ_RETURN_IF_ERROR(engine.ParallelFor((R + per_block - 1) / per_block, [&](int64_t b) {
    const int64_t end = std::min(R, (b + 1) * per_block);
    for (int64_t r = b * per_block; r < end; ++r) {
      engine.kernels().dequant_row(codes + r * C, C, q.group_size, params, scales + r * G,
                                   zeros ? zeros + r * G : nullptr, work.data() + r * C);
    }
  }));
  if (!transposed) return work;
  std::vector<float> out(n);
  Transpose(work.data(), R, C, out.data());
  return out;
}

}  // namespace rtnq
