#include "core/tensor_stream.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/huge_pages.h"
#include "core/kernels/kernel_params.h"
#include "core/layout/gptq.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

// Codes are signed for int sym and the float-4 types, unsigned for int asym.
ElemType CodeType(const QuantConfig& c) { return IsIntAsym(c) ? ElemType::kU8 : ElemType::kI8; }

bool Packed(const StreamOutputs& o) { return o.form == StreamForm::kPacked && !o.metrics_only; }

// Codes (1 byte per element), f32 scales and, for int asym, i32 zero points: the kCodes outputs,
// and what a packed form keeps until the tensor's end.
int64_t CodesBytes(const QuantConfig& c, int64_t rows, int64_t cols) {
  const ScaleGrid grid = ScaleGridOf(c, rows, cols);
  return rows * cols + grid.rows * grid.cols * 4 * (IsIntAsym(c) ? 2 : 1);
}

int64_t SpecBytes(const std::vector<TensorSpec>& specs) {
  int64_t bytes = 0;
  for (const TensorSpec& t : specs) {
    int64_t n = ElemSize(t.dtype);
    for (int64_t d : t.shape) n *= d;
    bytes += n;
  }
  return bytes;
}

// The output bytes of a [rows, cols] view in an unpacked form (kFake, kCodes).
int64_t UnpackedBytes(ElemType dtype, const QuantConfig& c, int64_t rows, int64_t cols,
                      const StreamOutputs& outputs) {
  if (outputs.metrics_only) return 0;
  if (outputs.form == StreamForm::kCodes) return CodesBytes(c, rows, cols);
  return rows * cols * ElemSize(dtype);
}

// A packed layout's output bytes for `name` (`shape`, 2-D view [rows, cols]), planned once, after
// what the layout refuses is checked from the header before any data is read: for GPTQ the
// loaders' rules on the 2-D view, for compressed-tensors and AWQ their whole plan (bits, scheme,
// 2-D weights, group sizes).
absl::StatusOr<int64_t> PackedBytes(const std::string& name, ElemType dtype,
                                    const std::vector<int64_t>& shape, const QuantConfig& config,
                                    int64_t rows, int64_t cols, const OutputLayoutOptions& layout) {
  if (layout.layout == OutputLayout::kGptq) {
    RTNQ_RETURN_IF_ERROR(CheckGptqCompatible(name, config, rows, cols));
  }
  auto specs = PlanLayoutOutputs(name, dtype, shape, config, layout);
  if (specs.ok()) return SpecBytes(*specs);
  if (layout.layout == OutputLayout::kCompressedTensors || layout.layout == OutputLayout::kAwq) {
    return specs.status();
  }
  // Where the planner does not know the shape (a 2-D view of more dimensions), a bound: packed
  // words never take more than the codes they pack plus one word per row and column (and GPTQ's
  // g_idx per column).
  return CodesBytes(config, rows, cols) + 8 * (rows + cols);
}

// The output bytes of `name`'s [rows, cols] view in `outputs`' form; a packed layout's refusal.
absl::StatusOr<int64_t> OutputBytes(const std::string& name, ElemType dtype,
                                    const std::vector<int64_t>& shape, const QuantConfig& config,
                                    int64_t rows, int64_t cols, const StreamOutputs& outputs) {
  if (outputs.form != StreamForm::kPacked) return UnpackedBytes(dtype, config, rows, cols, outputs);
  RTNQ_ASSIGN_OR_RETURN(const int64_t bytes,
                        PackedBytes(name, dtype, shape, config, rows, cols, outputs.layout));
  return outputs.metrics_only ? 0 : bytes;
}

// Stacked MoE experts: each expert's weight is checked and counted as a tensor of its own.
absl::Status PlanExperts(TensorStreamPlan& p, const std::optional<ExpertLayout>& expert_layout) {
  if (!expert_layout.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        TensorPrefix(p.name), ShapeString(p.shape),
        " holds stacked MoE experts: give their layout (the session's expert_layout: OUT_IN, "
        "IN_OUT, OUT_IN_INTERLEAVED or IN_OUT_INTERLEAVED) so each expert is quantized as its "
        "own [out, in] weight"));
  }
  RTNQ_ASSIGN_OR_RETURN(p.experts, PlanExpertSlices(p.name, p.shape, *expert_layout, std::nullopt));
  for (const ExpertSlice& e : p.experts) {
    RTNQ_ASSIGN_OR_RETURN(
        const int64_t bytes,
        OutputBytes(e.layer + ".weight", p.dtype, {e.out, e.in}, p.config, e.out, e.in, p.outputs));
    p.output_bytes += bytes;
  }
  p.mode = StreamMode::kWhole;
  p.step_bytes = p.input_bytes;
  return absl::OkStatus();
}

}  // namespace

QuantizeOptions OptionsFor(const StreamOutputs& outputs, QuantizeOptions options) {
  options.fake_quant = outputs.form == StreamForm::kFake && !outputs.metrics_only;
  options.codes = outputs.form != StreamForm::kFake && !outputs.metrics_only;
  return options;
}

absl::StatusOr<TensorStreamPlan> PlanTensorStream(const std::string& name, ElemType dtype,
                                                  const std::vector<int64_t>& shape,
                                                  const QuantConfig& config,
                                                  const QuantizeOptions& options,
                                                  const StreamOutputs& outputs,
                                                  const std::optional<ExpertLayout>& experts) {
  TensorStreamPlan p;
  p.name = name;
  p.dtype = dtype;
  p.shape = shape;
  p.config = config;
  p.options = OptionsFor(outputs, options);
  p.outputs = outputs;
  RTNQ_ASSIGN_OR_RETURN(p.tensor, PlanTensor(name, dtype, shape, config, p.options));
  // PlanTensor has checked that this product does not overflow.
  p.input_bytes = p.tensor.elements * ElemSize(dtype);
  if (!p.tensor.quantize) {
    p.mode = StreamMode::kPassThrough;
    p.output_bytes = outputs.metrics_only ? 0 : p.input_bytes;
    return p;
  }
  const int64_t rows = p.tensor.rows, cols = p.tensor.cols;
  if (StackedExpertsOf(name).has_value() && shape.size() == 3) {
    RTNQ_RETURN_IF_ERROR(PlanExperts(p, experts));
    return p;
  }
  RTNQ_ASSIGN_OR_RETURN(p.output_bytes,
                        OutputBytes(name, dtype, shape, config, rows, cols, outputs));
  if (!RowStreamQuantizer::CanStream(config, p.options)) {
    p.mode = StreamMode::kWhole;
    p.step_bytes = p.input_bytes;
    return p;
  }
  p.mode = StreamMode::kRows;
  p.step_bytes = cols * ElemSize(dtype);
  if (Packed(outputs)) {
    // The codes are kept until the end, then packed while they still exist.
    p.kept_bytes = CodesBytes(config, rows, cols) + p.output_bytes;
  } else {
    p.row_output_bytes = UnpackedBytes(dtype, config, 1, cols, outputs);
  }
  return p;
}

std::vector<TensorSpec> StreamedOutputSpecs(const TensorStreamPlan& plan) {
  if (plan.mode == StreamMode::kPassThrough || plan.outputs.form != StreamForm::kCodes) {
    return {{plan.name, plan.dtype, plan.shape}};
  }
  const int64_t rows = plan.tensor.rows, cols = plan.tensor.cols;
  const ScaleGrid g = plan.tensor.scale_grid;
  std::vector<TensorSpec> out{{plan.name + ".codes", CodeType(plan.config), {rows, cols}},
                              {plan.name + ".scales", ElemType::kF32, {g.rows, g.cols}}};
  if (IsIntAsym(plan.config))
    out.push_back({plan.name + ".zeros", ElemType::kI32, {g.rows, g.cols}});
  return out;
}

absl::StatusOr<std::vector<PackedTensor>> LayOutQuantized(QuantizedTensor& q,
                                                          const StreamOutputs& outputs,
                                                          const Engine& engine) {
  std::vector<PackedTensor> out;
  if (outputs.metrics_only) return out;
  auto bytes_of = [](const auto& v) {
    std::vector<uint8_t> b(v.size() * sizeof(v[0]));
    if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
  };
  switch (outputs.form) {
    case StreamForm::kCodes: {
      const int64_t sr = q.scale_rows(), sc = q.scale_cols();
      out.push_back({q.name + ".codes", CodeType(q.config), {q.rows, q.cols}, std::move(q.codes)});
      out.push_back({q.name + ".scales", ElemType::kF32, {sr, sc}, bytes_of(q.scales)});
      if (IsIntAsym(q.config)) {
        out.push_back({q.name + ".zeros", ElemType::kI32, {sr, sc}, bytes_of(q.zeros)});
      }
      return out;
    }
    case StreamForm::kPacked:
      return PackToLayout(q, q.name, outputs.layout, engine);
    case StreamForm::kFake:
      break;
  }
  out.push_back({q.name, q.dtype, q.shape, std::move(q.fake)});
  return out;
}

absl::StatusOr<std::unique_ptr<TensorStream>> TensorStream::Start(const TensorStreamPlan& plan,
                                                                  const Engine& engine) {
  if (plan.mode != StreamMode::kRows) {
    return absl::FailedPreconditionError(
        absl::StrCat(TensorPrefix(plan.name), "is not quantized row by row"));
  }
  const TensorInput header{plan.name, plan.dtype, plan.shape, {}};
  RTNQ_ASSIGN_OR_RETURN(
      std::unique_ptr<RowStreamQuantizer> rows,
      RowStreamQuantizer::FromPlan(header, plan.tensor, plan.config, plan.options, engine));
  return std::unique_ptr<TensorStream>(new TensorStream(plan, engine, std::move(rows)));
}

TensorStream::TensorStream(TensorStreamPlan plan, const Engine& engine,
                           std::unique_ptr<RowStreamQuantizer> rows)
    : plan_(std::move(plan)), engine_(engine), rows_(std::move(rows)) {
  if (Packed(plan_.outputs)) {
    kept_.name = plan_.name;
    kept_.dtype = plan_.dtype;
    kept_.shape = plan_.shape;
    kept_.quantized = true;
    kept_.config = plan_.config;
    kept_.rows = plan_.tensor.rows;
    kept_.cols = plan_.tensor.cols;
    kept_.group_size = plan_.tensor.group_size;
  }
}

absl::Status TensorStream::Add(absl::Span<const uint8_t> bytes, const RowSink& sink) {
  const size_t row_bytes = static_cast<size_t>(rows_->row_bytes());
  // Whole rows are quantized where they lie; only a row split across pieces is assembled.
  if (!carry_.empty()) {
    const size_t take = std::min(row_bytes - carry_.size(), bytes.size());
    carry_.insert(carry_.end(), bytes.begin(), bytes.begin() + take);
    bytes.remove_prefix(take);
    if (carry_.size() < row_bytes) return absl::OkStatus();
    RTNQ_RETURN_IF_ERROR(AddRows(carry_, sink));
    carry_.clear();
  }
  const size_t whole = bytes.size() / row_bytes * row_bytes;
  if (whole > 0) {
    RTNQ_RETURN_IF_ERROR(AddRows(bytes.subspan(0, whole), sink));
    bytes.remove_prefix(whole);
  }
  if (!bytes.empty()) {
    carry_.reserve(row_bytes);
    carry_.insert(carry_.end(), bytes.begin(), bytes.end());
  }
  return absl::OkStatus();
}

absl::Status TensorStream::AddRows(absl::Span<const uint8_t> rows, const RowSink& sink) {
  RowBlockOutput out;
  RTNQ_RETURN_IF_ERROR(rows_->AddRows(rows, out));
  if (!Packed(plan_.outputs)) {
    sink(out);
    return absl::OkStatus();
  }
  QuantizedTensor& q = kept_;
  if (q.codes.capacity() == 0 && !out.codes.empty()) {
    // The codes were reserved whole at the header: allocate them once, never by doubling, in
    // huge pages where the kernel allows (a page fault per 4 KiB of a large tensor's codes cost
    // more than quantizing them).
    const int64_t groups = q.rows * rows_->groups_per_row();
    ReserveInHugePages(q.codes, q.rows * q.cols);
    q.scales.reserve(groups);
    if (!out.zeros.empty()) q.zeros.reserve(groups);
  }
  q.codes.insert(q.codes.end(), out.codes.begin(), out.codes.end());
  q.scales.insert(q.scales.end(), out.scales.begin(), out.scales.end());
  q.zeros.insert(q.zeros.end(), out.zeros.begin(), out.zeros.end());
  return absl::OkStatus();
}

absl::StatusOr<TensorStream::Result> TensorStream::Finish() {
  if (!carry_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(TensorPrefix(plan_.name), carry_.size(),
                                                   " bytes of a partial row at the end"));
  }
  Result r;
  RTNQ_ASSIGN_OR_RETURN(r.metrics, rows_->Finish());
  if (Packed(plan_.outputs)) {
    kept_.metrics = r.metrics;
    RTNQ_ASSIGN_OR_RETURN(r.packed, PackToLayout(kept_, plan_.name, plan_.outputs.layout, engine_));
    kept_ = QuantizedTensor();  // the codes are in the packed tensors now
  }
  return r;
}

}  // namespace rtnq
