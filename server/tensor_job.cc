#include "server/tensor_job.h"

#include <algorithm>
#include <exception>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/dtype.h"
#include "core/expert_quantize.h"
#include "core/layout/output_plan.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"
#include "proto/quant_config_conversion.h"
#include "proto/status_conversion.h"

namespace rtnq::server {
namespace {

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

v1::OutputTensor OutputOf(const TensorSpec& t) {
  int64_t bytes = ElemSize(t.dtype);
  for (int64_t d : t.shape) bytes *= d;
  return MakeOutput(t.name, t.dtype, t.shape, bytes);
}

// The session's output form in the core's terms.
StreamOutputs OutputsOf(const ParsedSession& s) {
  StreamOutputs o;
  o.metrics_only = s.metrics_only;
  if (IsPackedForm(s.output_form)) {
    o.form = StreamForm::kPacked;
    o.layout = LayoutOf(s);
  } else if (s.output_form == v1::OUTPUT_FORM_CODES) {
    o.form = StreamForm::kCodes;
  }
  return o;
}

// What the reservation of each mode covers, for the refusal's message.
const char* ReservationWhat(TensorJob::Mode mode, bool packed) {
  if (mode == TensorJob::Mode::kBuffered) return "the whole tensor (its input or its outputs)";
  return packed ? "its codes kept for packing, the packed outputs and one row" : "one row";
}

}  // namespace

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

  auto fail = [&](const absl::Status& status) { return Refuse(std::move(job), status); };
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
  QuantizeOptions o;
  o.quantize_1d = s.quantize_1d;
  o.pass_nonfinite = s.pass_nonfinite;
  o.cancel = cancel;
  if (!s.candidates.empty()) return PlanCandidates(std::move(job), o, limits);

  auto plan = PlanTensorStream(job->name_, job->dtype_, job->shape_, config, o, OutputsOf(s),
                               s.expert_layout);
  if (!plan.ok()) return fail(plan.status());
  if (absl::Status st = job->CheckTotalBytes(plan->input_bytes); !st.ok()) return fail(st);
  job->plan_ = *std::move(plan);
  const TensorStreamPlan& p = job->plan_;
  const bool packed = p.outputs.form == StreamForm::kPacked && !p.outputs.metrics_only;
  switch (p.mode) {
    case StreamMode::kPassThrough:
      job->mode_ = Mode::kEcho;
      return job;
    case StreamMode::kWhole:
      job->mode_ = Mode::kBuffered;
      job->step_bytes_ = job->total_bytes_;
      // Stacked experts: every expert is quantized from the tensor at once, and its outputs join
      // the rest; otherwise the input goes as the outputs come.
      job->share_ = TensorShare(0,
                                p.experts.empty() ? std::max(job->total_bytes_, p.output_bytes)
                                                  : job->total_bytes_ + p.output_bytes,
                                1, 1);
      break;
    case StreamMode::kRows: {
      auto stream = TensorStream::Start(p, engine);
      if (!stream.ok()) return fail(stream.status());
      job->stream_ = *std::move(stream);
      job->mode_ = Mode::kRowStream;
      job->step_bytes_ = p.step_bytes;
      if (packed) {
        // The codes and the packed outputs built from them are held to the end.
        job->share_ = TensorShare(p.kept_bytes, p.step_bytes, 1, 1);
      } else {
        // A row's outputs replace its input; CODES of small groups are larger than the input, so
        // the input is weighted by the ratio and a step never adds to what is accounted.
        job->share_ = TensorShare(0, std::max(p.step_bytes, p.row_output_bytes), p.row_output_bytes,
                                  p.step_bytes);
      }
      break;
    }
  }
  return RefuseOverLimit(std::move(job), limits, packed);
}

absl::Status TensorJob::CheckTotalBytes(int64_t needed) const {
  if (needed == total_bytes_) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(TensorPrefix(name_), "shape ", ShapeString(shape_),
                                                 " with dtype ", dtype_label_, " needs ", needed,
                                                 " bytes, but total_bytes is ", total_bytes_));
}

std::shared_ptr<TensorJob> TensorJob::PlanCandidates(std::shared_ptr<TensorJob> job,
                                                     const QuantizeOptions& o,
                                                     const PlanLimits& limits) {
  auto fail = [&](const absl::Status& status) { return Refuse(std::move(job), status); };
  auto plan = PlanTensor(job->name_, job->dtype_, job->shape_, job->resolved_.config, o);
  if (!plan.ok()) return fail(plan.status());
  // PlanTensor has checked that this product does not overflow.
  if (absl::Status st = job->CheckTotalBytes(plan->elements * ElemSize(job->dtype_)); !st.ok()) {
    return fail(st);
  }
  // Candidates replace the resolved config; each needs the whole tensor.
  for (const QuantConfig& c : job->session_->candidates) {
    auto p = PlanTensor(job->name_, job->dtype_, job->shape_, c, o);
    if (!p.ok()) return fail(p.status());
    if (!p->quantize) {
      return fail(absl::InvalidArgumentError(absl::StrCat(
          TensorPrefix(job->name_), "candidate sessions measure quantizable tensors only (",
          p->skip_reason, ")")));
    }
  }
  job->plan_.options = OptionsFor(OutputsOf(*job->session_), o);
  job->mode_ = Mode::kBuffered;
  job->step_bytes_ = job->total_bytes_;
  job->share_ = TensorShare(0, job->total_bytes_, 1, 1);  // metrics only: no outputs held
  return RefuseOverLimit(std::move(job), limits);
}

std::shared_ptr<TensorJob> TensorJob::Refuse(std::shared_ptr<TensorJob> job,
                                             const absl::Status& status) {
  job->mode_ = Mode::kFailed;
  job->header_error_ = status;
  return job;
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
  stream_.reset();
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
  std::vector<v1::OutputTensor> out;
  for (const TensorSpec& t : StreamedOutputSpecs(plan_)) out.push_back(OutputOf(t));
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
  const bool fake = plan_.outputs.form == StreamForm::kFake;
  const int64_t row_bytes = plan_.step_bytes;
  // Unpacked forms answer each block of rows at once (a packed form's outputs come at the end).
  auto emit = [&](RowBlockOutput& out) {
    if (!header_sent_) EmitHeader(step, true, "", StreamedOutputs());
    if (fake) {
      EmitBytes(step, 0, out.first_row * row_bytes, out.fake.data(), out.fake.size());
      return;
    }
    const int64_t cols = plan_.tensor.cols, groups = plan_.tensor.scale_grid.cols;
    EmitBytes(step, 0, out.first_row * cols, out.codes.data(), out.codes.size());
    EmitBytes(step, 1, out.first_row * groups * 4, out.scales.data(), out.scales.size() * 4);
    if (!out.zeros.empty()) {
      EmitBytes(step, 2, out.first_row * groups * 4, out.zeros.data(), out.zeros.size() * 4);
    }
  };
  for (std::string& chunk : chunks) {
    // Input bytes whose rows were quantized are consumed; a partial row stays held in the stream.
    const int64_t held = stream_->carried_bytes();
    RTNQ_RETURN_IF_ERROR(
        stream_->Add({reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size()}, emit));
    step.consumed_bytes += held + static_cast<int64_t>(chunk.size()) - stream_->carried_bytes();
    std::string().swap(chunk);  // free as we go
  }
  chunks.clear();
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
    if (!header_sent_) EmitHeader(step, false, plan_.tensor.skip_reason, StreamedOutputs());
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
  if (last && stream_->carried_bytes() != 0) {
    // Unreachable while total_bytes matches the shape (checked at the header).
    Fail(step, absl::InternalError(absl::StrCat(TensorPrefix(name_), stream_->carried_bytes(),
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
    if (!header_sent_) EmitHeader(step, false, plan_.tensor.skip_reason, StreamedOutputs());
    TensorMetrics m;
    m.elements = total_bytes_ / ElemSize(dtype_);
    m.snr_db = std::numeric_limits<double>::infinity();
    EmitMetrics(step, m, TensorOutcome::kSkipped);
    return step;
  }
  absl::StatusOr<TensorStream::Result> result = stream_->Finish();
  if (!result.ok()) {
    Fail(step, result.status());
    return step;
  }
  // This finished step closes the share: its reservation (the kept codes and the packed outputs
  // built from them) goes back, and the output messages are accounted as they are queued.
  if (plan_.outputs.form == StreamForm::kPacked && !session_->metrics_only) {
    EmitOutputs(step, result->packed);
  }
  if (!header_sent_) EmitHeader(step, true, "", StreamedOutputs());
  EmitMetrics(step, result->metrics, TensorOutcome::kQuantized);
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
  if (!plan_.experts.empty()) {
    // Each expert's weight is quantized and laid out exactly as a tensor of its own would be.
    auto piece = [&](const TensorInput& w) -> absl::StatusOr<PieceOutputs> {
      RTNQ_ASSIGN_OR_RETURN(QuantizedTensor q,
                            QuantizeTensor(w, plan_.config, plan_.options, *engine_));
      if (!q.quantized) {
        return absl::InvalidArgumentError(absl::StrCat("not quantized: ", q.skip_reason));
      }
      PieceOutputs out;
      out.metrics = q.metrics;
      RTNQ_ASSIGN_OR_RETURN(out.tensors, LayOutQuantized(q, plan_.outputs, *engine_));
      return out;
    };
    const bool fake =
        session_->output_form == v1::OUTPUT_FORM_FAKE_QUANT && !session_->metrics_only;
    absl::StatusOr<PieceOutputs> all = QuantizeStackedExperts(
        input, plan_.experts, session_->expert_layout->transposed, fake, piece, *engine_);
    std::vector<uint8_t>().swap(data);
    if (!all.ok()) {
      Fail(step, all.status());
      return step;
    }
    EmitOutputs(step, all->tensors);
    EmitMetrics(step, all->metrics, TensorOutcome::kQuantized);
    return step;
  }
  auto result = QuantizeTensor(input, plan_.config, plan_.options, *engine_);
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
  absl::StatusOr<std::vector<PackedTensor>> outputs = LayOutQuantized(q, plan_.outputs, *engine_);
  if (!outputs.ok()) {
    Fail(step, outputs.status());
    return step;
  }
  EmitOutputs(step, *outputs);
  EmitMetrics(step, q.metrics, TensorOutcome::kQuantized);
  return step;
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
