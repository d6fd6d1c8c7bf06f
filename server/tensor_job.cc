#include "server/tensor_job.h"

#include <algorithm>
#include <cstring>
#include <exception>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/dtype.h"
#include "core/expert_quantize.h"
#include "core/io/huge_pages.h"
#include "core/kernels/kernel_params.h"
#include "core/layout/gptq.h"
#include "core/layout/output_plan.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"
#include "proto/quant_config_conversion.h"
#include "proto/status_conversion.h"

namespace rtnq::server {
namespace {

// Codes are signed for int sym and the float-4 types, unsigned for int asym.
ElemType CodeType(const QuantConfig& c) { return IsIntAsym(c) ? ElemType::kU8 : ElemType::kI8; }

v1::OutputTensor MakeOutput(std::string name, ElemType dtype, std::vector<int64_t> shape,
                            int64_t bytes) {
  v1::OutputTensor o;
  o.set_name(std::move(name));
  o.set_dtype(ElemTypeName(dtype));
  for (int64_t d : shape) o.add_shape(d);
  o.set_total_bytes(bytes);
  return o;
}

int64_t SumSizes(const std::vector<std::string>& chunks) {
  int64_t n = 0;
  for (const auto& c : chunks) n += static_cast<int64_t>(c.size());
  return n;
}

// Codes (1 byte per element), f32 scales and, for int asym, i32 zero points: the CODES outputs,
// and what a packed form keeps until the tensor's end.
int64_t CodesBytes(const QuantConfig& c, int64_t rows, int64_t cols) {
  const ScaleGrid grid = ScaleGridOf(c, rows, cols);
  return rows * cols + grid.rows * grid.cols * 4 * (IsIntAsym(c) ? 2 : 1);
}

// The data bytes of a quantized tensor's outputs in the session's form.
int64_t OutputBytes(const ParsedSession& s, const std::string& name, ElemType dtype,
                    const std::vector<int64_t>& shape, const QuantConfig& c, int64_t rows,
                    int64_t cols, int64_t total_bytes) {
  if (s.metrics_only) return 0;
  switch (s.output_form) {
    case v1::OUTPUT_FORM_CODES:
      return CodesBytes(c, rows, cols);
    case v1::OUTPUT_FORM_PACKED_INC:
    case v1::OUTPUT_FORM_PACKED_GPTQ:
    case v1::OUTPUT_FORM_PACKED_COMPRESSED_TENSORS:
    case v1::OUTPUT_FORM_PACKED_AWQ: {
      auto specs = PlanQuantizedOutputs(name, dtype, shape, c, LayoutOf(s));
      // Where the planner does not know the shape, a bound: packed words never take more than
      // the codes they pack plus one word per row and column (and GPTQ's g_idx per column).
      if (!specs.ok()) return CodesBytes(c, rows, cols) + 8 * (rows + cols);
      int64_t bytes = 0;
      for (const TensorSpec& t : *specs) {
        int64_t n = ElemSize(t.dtype);
        for (int64_t d : t.shape) n *= d;
        bytes += n;
      }
      return bytes;
    }
    default:
      return total_bytes;
  }
}

// What the reservation of each mode covers, for the refusal's message.
const char* ReservationWhat(TensorJob::Mode mode, bool packed) {
  if (mode == TensorJob::Mode::kBuffered) return "the whole tensor (its input or its outputs)";
  return packed ? "its codes kept for packing, the packed outputs and one row" : "one row";
}

}  // namespace

absl::Status TensorJob::PlanExperts(TensorJob& job, const QuantConfig& config) {
  const ParsedSession& s = *job.session_;
  if (!s.expert_layout.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor \"", job.name_, "\" ", ShapeString(job.shape_),
        " holds stacked MoE experts: set the session's expert_layout (OUT_IN, IN_OUT, "
        "OUT_IN_INTERLEAVED or IN_OUT_INTERLEAVED) so each expert is quantized as its own "
        "[out, in] weight"));
  }
  RTNQ_ASSIGN_OR_RETURN(job.experts_,
                        PlanExpertSlices(job.name_, job.shape_, *s.expert_layout, std::nullopt));
  if (s.output_form == v1::OUTPUT_FORM_PACKED_GPTQ) {
    for (const ExpertSlice& e : job.experts_) {
      RTNQ_RETURN_IF_ERROR(CheckGptqCompatible(e.layer, config, e.out, e.in));
    }
  }
  return absl::OkStatus();
}

std::shared_ptr<TensorJob> TensorJob::Plan(const v1::TensorHeader& header,
                                           std::shared_ptr<const ParsedSession> session,
                                           const Engine& engine, const std::atomic<bool>* cancel,
                                           const PlanLimits& limits) {
  std::shared_ptr<TensorJob> job(new TensorJob());
  job->start_ = std::chrono::steady_clock::now();
  job->name_ = header.name();
  job->total_bytes_ = header.total_bytes();
  if (header.has_crc32c()) job->expected_crc_ = header.crc32c();
  job->shape_.assign(header.shape().begin(), header.shape().end());
  job->engine_ = &engine;
  job->output_chunk_bytes_ = std::max<int64_t>(1, limits.output_chunk_bytes);
  job->session_ = std::move(session);
  const ParsedSession& s = *job->session_;

  auto fail = [&](const absl::Status& status) {
    job->mode_ = Mode::kFailed;
    job->header_error_ = status;
    return job;
  };
  auto dtype = ParseElemType(header.dtype());
  if (!dtype.ok()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(TensorPrefix(job->name_), dtype.status().message())));
  }
  job->dtype_ = *dtype;
  job->dtype_label_ = ElemTypeName(*dtype);
  absl::StatusOr<ResolvedConfig> resolved = s.resolver.Resolve(job->name_);
  if (!resolved.ok()) return fail(resolved.status());
  job->resolved_ = *std::move(resolved);
  const QuantConfig& config = job->resolved_.config;
  QuantizeOptions& o = job->options_;
  o.fake_quant = s.output_form == v1::OUTPUT_FORM_FAKE_QUANT && !s.metrics_only;
  o.codes = s.output_form != v1::OUTPUT_FORM_FAKE_QUANT && !s.metrics_only;
  o.quantize_1d = s.quantize_1d;
  o.pass_nonfinite = s.pass_nonfinite;
  o.cancel = cancel;

  auto plan = PlanTensor(job->name_, job->dtype_, job->shape_, config, o);
  if (!plan.ok()) return fail(plan.status());
  // PlanTensor has checked that this product does not overflow.
  const int64_t needed = plan->elements * ElemSize(job->dtype_);
  if (needed != job->total_bytes_) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        TensorPrefix(job->name_), "shape ", ShapeString(job->shape_), " with dtype ",
        job->dtype_label_, " needs ", needed, " bytes, but total_bytes is ", job->total_bytes_)));
  }
  if (!s.candidates.empty()) {
    // Candidates replace the resolved config; each needs the whole tensor.
    for (const QuantConfig& c : s.candidates) {
      auto p = PlanTensor(job->name_, job->dtype_, job->shape_, c, o);
      if (!p.ok()) return fail(p.status());
      if (!p->quantize) {
        return fail(absl::InvalidArgumentError(absl::StrCat(
            TensorPrefix(job->name_), "candidate sessions measure quantizable tensors only (",
            p->skip_reason, ")")));
      }
    }
    job->mode_ = Mode::kBuffered;
    job->step_bytes_ = job->total_bytes_;
    job->share_ = TensorShare(0, job->total_bytes_, 1, 1);  // metrics only: no outputs held
    return RefuseOverLimit(std::move(job), limits);
  }
  if (!plan->quantize) {
    job->mode_ = Mode::kEcho;
    job->skip_reason_ = plan->skip_reason;
    return job;
  }
  if (StackedExpertsOf(job->name_).has_value() && job->shape_.size() == 3) {
    if (absl::Status st = PlanExperts(*job, config); !st.ok()) return fail(st);
  } else if (s.output_form == v1::OUTPUT_FORM_PACKED_GPTQ) {
    if (absl::Status st = CheckGptqCompatible(job->name_, config, plan->rows, plan->cols);
        !st.ok()) {
      return fail(st);
    }
  }
  if (s.output_form == v1::OUTPUT_FORM_PACKED_COMPRESSED_TENSORS ||
      s.output_form == v1::OUTPUT_FORM_PACKED_AWQ) {
    // Their rules (bits, scheme, 2-D, group sizes loaders take) before any data is read: for a
    // stacked MoE tensor, each expert's weight is what the layout stores.
    if (job->experts_.empty()) {
      auto specs = PlanQuantizedOutputs(job->name_, job->dtype_, job->shape_, config, LayoutOf(s));
      if (!specs.ok()) return fail(specs.status());
    }
    for (const ExpertSlice& e : job->experts_) {
      auto specs = PlanQuantizedOutputs(e.layer + ".weight", job->dtype_, {e.out, e.in}, config,
                                        LayoutOf(s));
      if (!specs.ok()) return fail(specs.status());
    }
  }
  const bool packed = IsPackedForm(s.output_form) && !s.metrics_only;
  if (!job->experts_.empty()) {
    // Whole: every expert is quantized from the tensor at once, and its outputs join the rest.
    job->mode_ = Mode::kBuffered;
    job->step_bytes_ = job->total_bytes_;
    int64_t outputs = 0;
    for (const ExpertSlice& e : job->experts_) {
      outputs += OutputBytes(s, e.layer + ".weight", job->dtype_, {e.out, e.in}, config, e.out,
                             e.in, e.out * e.in * ElemSize(job->dtype_));
    }
    job->share_ = TensorShare(0, job->total_bytes_ + outputs, 1, 1);
  } else if (RowStreamQuantizer::CanStream(config, o)) {
    TensorInput in{job->name_, job->dtype_, job->shape_, {}};
    auto rows = RowStreamQuantizer::Create(in, config, o, engine);
    if (!rows.ok()) return fail(rows.status());
    job->rows_ = *std::move(rows);
    job->mode_ = Mode::kRowStream;
    const int64_t row_bytes = job->rows_->row_bytes();
    job->step_bytes_ = row_bytes;
    if (packed) {
      QuantizedTensor& q = job->packed_codes_;
      q.name = job->name_;
      q.dtype = job->dtype_;
      q.shape = job->shape_;
      q.quantized = true;
      q.config = config;
      q.rows = plan->rows;
      q.cols = plan->cols;
      q.group_size = EffectiveGroupSize(config.group_size, plan->cols);
      // The codes are kept until the end, then packed while they still exist.
      const int64_t kept = CodesBytes(config, plan->rows, plan->cols);
      job->share_ = TensorShare(kept + OutputBytes(s, job->name_, job->dtype_, job->shape_, config,
                                                   plan->rows, plan->cols, job->total_bytes_),
                                row_bytes, 1, 1);
    } else {
      // A row's outputs replace its input; CODES of small groups are larger than the input, so
      // the input is weighted by the ratio and a step never adds to what is accounted.
      const int64_t out_row =
          OutputBytes(s, job->name_, job->dtype_, job->shape_, config, 1, plan->cols, row_bytes);
      job->share_ = TensorShare(0, std::max(row_bytes, out_row), out_row, row_bytes);
    }
  } else {
    job->mode_ = Mode::kBuffered;
    job->step_bytes_ = job->total_bytes_;
    job->share_ = TensorShare(
        0,
        std::max(job->total_bytes_, OutputBytes(s, job->name_, job->dtype_, job->shape_, config,
                                                plan->rows, plan->cols, job->total_bytes_)),
        1, 1);
  }
  return RefuseOverLimit(std::move(job), limits, packed);
}

std::shared_ptr<TensorJob> TensorJob::RefuseOverLimit(std::shared_ptr<TensorJob> job,
                                                      const PlanLimits& limits, bool packed) {
  const int64_t reservation = job->share_.reservation();
  if (reservation <= limits.max_reservation_bytes) return job;
  job->header_error_ = absl::ResourceExhaustedError(
      absl::StrCat(TensorPrefix(job->name_), "quantizing it holds ", reservation,
                   " bytes at once (", ReservationWhat(job->mode_, packed),
                   "), over the server's --max_reservation_bytes ", limits.max_reservation_bytes));
  job->share_ = TensorShare();
  job->mode_ = Mode::kFailed;
  return job;
}

JobStep TensorJob::AddData(std::vector<std::string> chunks) {
  try {
    return DoAddData(chunks, /*last=*/false);
  } catch (const std::exception& e) {
    // Exceptions (allocation failures) stop at this task boundary and become the tensor's error.
    JobStep step;
    Fail(step, absl::InternalError(absl::StrCat(TensorPrefix(name_), e.what())));
    return step;
  }
}

JobStep TensorJob::Finish(std::vector<std::string> chunks) {
  try {
    switch (mode_) {
      case Mode::kFailed: {
        JobStep step;
        Fail(step, header_error_);
        return step;
      }
      case Mode::kBuffered:
        return DoFinishBuffered(chunks);
      case Mode::kEcho:
      case Mode::kRowStream:
        return DoFinishStreamed(chunks);
    }
    return {};
  } catch (const std::exception& e) {
    JobStep step;
    Fail(step, absl::InternalError(absl::StrCat(TensorPrefix(name_), e.what())));
    return step;
  }
}

void TensorJob::Fail(JobStep& step, const absl::Status& status) {
  // A finished step closes the tensor's share: whatever it held is no longer accounted.
  carry_.clear();
  carry_.shrink_to_fit();
  if (failed_) return;  // the TensorError went out with an earlier step
  failed_ = true;
  v1::TensorError* e = step.responses.emplace_back().mutable_error();
  e->set_tensor_name(name_);
  e->set_code(static_cast<int>(status.code()));
  e->set_message(TruncateStatusMessage(status.message()));
  step.finished = true;
  step.outcome = TensorOutcome::kFailed;
  step.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void TensorJob::EmitHeader(JobStep& step, bool quantized, const std::string& skip_reason,
                           const std::vector<v1::OutputTensor>& outputs) {
  v1::ResultHeader* h = step.responses.emplace_back().mutable_result();
  h->set_tensor_name(name_);
  h->set_quantized(quantized);
  h->set_skip_reason(skip_reason);
  ConfigToProto(resolved_.config, h->mutable_config());
  h->set_decided_by(resolved_.decided_by);
  h->set_match_kind(resolved_.match_kind);
  if (!session_->metrics_only) {
    for (const auto& o : outputs) *h->add_outputs() = o;
  }
  header_sent_ = true;
}

void TensorJob::EmitBytes(JobStep& step, uint32_t index, int64_t offset, const void* data,
                          size_t size) {
  if (session_->metrics_only) return;
  const auto* p = static_cast<const char*>(data);
  for (size_t done = 0; done < size;) {
    const size_t n = std::min<size_t>(size - done, output_chunk_bytes_);
    v1::OutputChunk* c = step.responses.emplace_back().mutable_chunk();
    c->set_output_index(index);
    c->set_offset(offset + static_cast<int64_t>(done));
    c->set_data(p + done, n);
    done += n;
  }
}

void TensorJob::EmitMetrics(JobStep& step, const TensorMetrics& m, TensorOutcome outcome) {
  step.finished = true;
  step.outcome = outcome;
  step.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  v1::TensorMetrics* out = step.responses.emplace_back().mutable_metrics();
  out->set_tensor_name(name_);
  out->set_elements(m.elements);
  out->set_groups(m.groups);
  out->set_mse(m.mse);
  out->set_max_abs_error(m.max_abs_error);
  out->set_snr_db(m.snr_db);
  out->set_clip_ratio(m.clip_ratio);
  out->set_server_seconds(step.seconds);
  out->set_quantize_seconds(m.seconds);
}

std::vector<v1::OutputTensor> TensorJob::StreamedOutputs() const {
  if (mode_ == Mode::kEcho || session_->output_form == v1::OUTPUT_FORM_FAKE_QUANT) {
    return {MakeOutput(name_, dtype_, shape_, total_bytes_)};
  }
  // CODES (packed forms send their header after packing).
  const int64_t rows = rows_->rows(), cols = rows_->row_bytes() / ElemSize(dtype_);
  const int64_t groups = rows_->groups_per_row();
  std::vector<v1::OutputTensor> out{
      MakeOutput(name_ + ".codes", CodeType(resolved_.config), {rows, cols}, rows * cols),
      MakeOutput(name_ + ".scales", ElemType::kF32, {rows, groups}, rows * groups * 4)};
  if (IsIntAsym(resolved_.config)) {
    out.push_back(MakeOutput(name_ + ".zeros", ElemType::kI32, {rows, groups}, rows * groups * 4));
  }
  return out;
}

void TensorJob::HashData(const std::string& chunk) {
  // The CRC32C is only compared with the header's; without one there is nothing to compute.
  if (expected_crc_.has_value()) crc_.Update(chunk.data(), chunk.size());
}

absl::Status TensorJob::CheckCrc() const {
  if (!expected_crc_.has_value() || crc_.value() == *expected_crc_) return absl::OkStatus();
  return absl::DataLossError(absl::StrFormat(
      "tensor \"%s\": CRC32C of the %d data bytes is 0x%08x, the header says 0x%08x", name_,
      total_bytes_, crc_.value(), *expected_crc_));
}

absl::Status TensorJob::StreamRows(std::vector<std::string>& chunks, JobStep& step) {
  const size_t row_bytes = static_cast<size_t>(rows_->row_bytes());
  // Whole rows are quantized where they lie in the received chunk; only a row split across
  // chunks is assembled in carry_ (so at most one row per stream is ever copied).
  for (std::string& chunk : chunks) {
    absl::string_view rest = chunk;
    if (!carry_.empty()) {
      const size_t take = std::min(row_bytes - carry_.size(), rest.size());
      carry_.append(rest.data(), take);
      rest.remove_prefix(take);
      if (carry_.size() == row_bytes) {
        RTNQ_RETURN_IF_ERROR(QuantizeRows(carry_, step));
        carry_.clear();
      }
    }
    const size_t whole = rest.size() / row_bytes * row_bytes;
    if (whole > 0) {
      RTNQ_RETURN_IF_ERROR(QuantizeRows(rest.substr(0, whole), step));
      rest.remove_prefix(whole);
    }
    if (!rest.empty()) {
      carry_.reserve(row_bytes);
      carry_.append(rest.data(), rest.size());
    }
    std::string().swap(chunk);  // free as we go
  }
  chunks.clear();
  return absl::OkStatus();
}

absl::Status TensorJob::QuantizeRows(absl::string_view rows, JobStep& step) {
  const int64_t row_bytes = rows_->row_bytes();
  const int64_t n = static_cast<int64_t>(rows.size());
  RowBlockOutput out;
  const auto* data = reinterpret_cast<const uint8_t*>(rows.data());
  if (absl::Status s = rows_->AddRows({data, rows.size()}, out); !s.ok()) return s;
  step.consumed_bytes += n;

  const v1::OutputForm form = session_->output_form;
  if (IsPackedForm(form)) {
    QuantizedTensor& q = packed_codes_;
    if (q.codes.capacity() == 0 && !out.codes.empty()) {
      // The codes were reserved whole at the header: allocate them once, never by doubling,
      // in huge pages where the kernel allows (a page fault per 4 KiB of a large tensor's codes
      // cost the server more than quantizing them).
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
  if (!header_sent_) EmitHeader(step, true, "", StreamedOutputs());
  if (form == v1::OUTPUT_FORM_FAKE_QUANT) {
    EmitBytes(step, 0, out.first_row * row_bytes, out.fake.data(), out.fake.size());
  } else {
    const int64_t cols = row_bytes / ElemSize(dtype_), groups = rows_->groups_per_row();
    EmitBytes(step, 0, out.first_row * cols, out.codes.data(), out.codes.size());
    EmitBytes(step, 1, out.first_row * groups * 4, out.scales.data(), out.scales.size() * 4);
    if (IsIntAsym(resolved_.config)) {
      EmitBytes(step, 2, out.first_row * groups * 4, out.zeros.data(), out.zeros.size() * 4);
    }
  }
  return absl::OkStatus();
}

JobStep TensorJob::DoAddData(std::vector<std::string>& chunks, bool last) {
  JobStep step;
  if (failed_) {
    step.consumed_bytes = SumSizes(chunks);  // dropped; the error already went out
    return step;
  }
  for (const auto& c : chunks) HashData(c);
  if (mode_ == Mode::kEcho) {
    if (!header_sent_) EmitHeader(step, false, skip_reason_, StreamedOutputs());
    for (auto& c : chunks) {
      EmitBytes(step, 0, echo_offset_, c.data(), c.size());
      echo_offset_ += static_cast<int64_t>(c.size());
    }
    step.consumed_bytes += SumSizes(chunks);
    return step;
  }
  if (mode_ != Mode::kRowStream) {
    Fail(step, absl::InternalError(
                   absl::StrCat(TensorPrefix(name_), "data step for a whole-tensor job")));
    return step;
  }
  if (absl::Status s = StreamRows(chunks, step); !s.ok()) {
    Fail(step, s);
    return step;
  }
  if (last && !carry_.empty()) {
    // Unreachable while total_bytes matches the shape (checked at the header).
    Fail(step, absl::InternalError(absl::StrCat(TensorPrefix(name_), carry_.size(),
                                                " bytes left over after the last row")));
  }
  return step;
}

JobStep TensorJob::DoFinishStreamed(std::vector<std::string>& chunks) {
  JobStep step = DoAddData(chunks, /*last=*/true);
  if (failed_) return step;
  if (absl::Status s = CheckCrc(); !s.ok()) {
    Fail(step, s);
    return step;
  }
  if (mode_ == Mode::kEcho) {
    if (!header_sent_) EmitHeader(step, false, skip_reason_, StreamedOutputs());
    TensorMetrics m;
    m.elements = total_bytes_ / ElemSize(dtype_);
    m.snr_db = std::numeric_limits<double>::infinity();
    EmitMetrics(step, m, TensorOutcome::kSkipped);
    return step;
  }
  auto metrics = rows_->Finish();
  if (!metrics.ok()) {
    Fail(step, metrics.status());
    return step;
  }
  // This finished step closes the share: its reservation (the kept codes and the packed outputs
  // built from them) goes back, and the output messages are accounted as they are queued.
  if (IsPackedForm(session_->output_form)) {
    packed_codes_.metrics = *metrics;
    if (!session_->metrics_only) {
      absl::StatusOr<std::vector<PackedTensor>> packed =
          PackToLayout(packed_codes_, name_, LayoutOf(*session_), *engine_);
      if (!packed.ok()) {
        Fail(step, packed.status());
        return step;
      }
      packed_codes_ = QuantizedTensor();  // the codes are in the packed tensors now
      std::vector<v1::OutputTensor> outputs;
      for (const auto& t : *packed) {
        outputs.push_back(MakeOutput(t.name, t.dtype, t.shape, t.data.size()));
      }
      EmitHeader(step, true, "", outputs);
      for (size_t i = 0; i < packed->size(); ++i) {
        EmitBytes(step, i, 0, (*packed)[i].data.data(), (*packed)[i].data.size());
        std::vector<uint8_t>().swap((*packed)[i].data);  // packed + messages stay in the bound
      }
    }
  }
  if (!header_sent_) EmitHeader(step, true, "", StreamedOutputs());
  EmitMetrics(step, *metrics, TensorOutcome::kQuantized);
  return step;
}

JobStep TensorJob::DoFinishBuffered(std::vector<std::string>& chunks) {
  JobStep step;
  std::vector<uint8_t> data;
  data.reserve(total_bytes_);
  for (auto& c : chunks) {
    HashData(c);
    data.insert(data.end(), c.begin(), c.end());
    std::string().swap(c);  // free as we go: the tensor never needs two whole copies
  }
  if (absl::Status s = CheckCrc(); !s.ok()) {
    Fail(step, s);
    return step;
  }
  const TensorInput input{name_, dtype_, shape_, {data.data(), data.size()}};
  if (!session_->candidates.empty()) {
    FinishCandidates(step, input);
    return step;
  }
  if (!experts_.empty()) {
    // Each expert's weight is quantized and laid out exactly as a tensor of its own would be.
    auto piece = [&](const TensorInput& w) -> absl::StatusOr<PieceOutputs> {
      RTNQ_ASSIGN_OR_RETURN(QuantizedTensor q,
                            QuantizeTensor(w, resolved_.config, options_, *engine_));
      if (!q.quantized) {
        return absl::InvalidArgumentError(absl::StrCat("not quantized: ", q.skip_reason));
      }
      PieceOutputs out;
      out.metrics = q.metrics;
      RTNQ_ASSIGN_OR_RETURN(out.tensors, LayOut(q));
      return out;
    };
    const bool fake =
        session_->output_form == v1::OUTPUT_FORM_FAKE_QUANT && !session_->metrics_only;
    absl::StatusOr<PieceOutputs> all = QuantizeStackedExperts(
        input, experts_, session_->expert_layout->transposed, fake, piece, *engine_);
    std::vector<uint8_t>().swap(data);
    if (!all.ok()) {
      Fail(step, all.status());
      return step;
    }
    EmitOutputs(step, all->tensors);
    EmitMetrics(step, all->metrics, TensorOutcome::kQuantized);
    return step;
  }
  auto result = QuantizeTensor(input, resolved_.config, options_, *engine_);
  if (!result.ok()) {
    Fail(step, result.status());
    return step;
  }
  QuantizedTensor& q = *result;
  if (!q.quantized) {  // passed through, e.g. non-finite values with pass_nonfinite
    EmitHeader(step, false, q.skip_reason, {MakeOutput(name_, dtype_, shape_, data.size())});
    EmitBytes(step, 0, 0, data.data(), data.size());
    EmitMetrics(step, q.metrics, TensorOutcome::kSkipped);
    return step;
  }
  std::vector<uint8_t>().swap(data);
  absl::StatusOr<std::vector<PackedTensor>> outputs = LayOut(q);
  if (!outputs.ok()) {
    Fail(step, outputs.status());
    return step;
  }
  EmitOutputs(step, *outputs);
  EmitMetrics(step, q.metrics, TensorOutcome::kQuantized);
  return step;
}

absl::StatusOr<std::vector<PackedTensor>> TensorJob::LayOut(QuantizedTensor& q) const {
  std::vector<PackedTensor> out;
  if (session_->metrics_only) return out;
  auto bytes_of = [](const auto& v) {
    std::vector<uint8_t> b(v.size() * sizeof(v[0]));
    if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
  };
  switch (session_->output_form) {
    case v1::OUTPUT_FORM_CODES: {
      const int64_t sr = q.scale_rows(), sc = q.scale_cols();
      out.push_back({q.name + ".codes", CodeType(q.config), {q.rows, q.cols}, std::move(q.codes)});
      out.push_back({q.name + ".scales", ElemType::kF32, {sr, sc}, bytes_of(q.scales)});
      if (IsIntAsym(q.config)) {
        out.push_back({q.name + ".zeros", ElemType::kI32, {sr, sc}, bytes_of(q.zeros)});
      }
      return out;
    }
    case v1::OUTPUT_FORM_PACKED_INC:
    case v1::OUTPUT_FORM_PACKED_GPTQ:
    case v1::OUTPUT_FORM_PACKED_COMPRESSED_TENSORS:
    case v1::OUTPUT_FORM_PACKED_AWQ:
      return PackToLayout(q, q.name, LayoutOf(*session_), *engine_);
    default:  // FAKE_QUANT
      out.push_back({q.name, q.dtype, q.shape, std::move(q.fake)});
      return out;
  }
}

void TensorJob::EmitOutputs(JobStep& step, std::vector<PackedTensor>& outputs) {
  std::vector<v1::OutputTensor> headers;
  for (const auto& t : outputs)
    headers.push_back(MakeOutput(t.name, t.dtype, t.shape, t.data.size()));
  EmitHeader(step, true, "", headers);
  for (size_t i = 0; i < outputs.size(); ++i) {
    EmitBytes(step, i, 0, outputs[i].data.data(), outputs[i].data.size());
    std::vector<uint8_t>().swap(outputs[i].data);  // the messages hold the bytes now
  }
}

}  // namespace rtnq::server
