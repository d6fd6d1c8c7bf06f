#include "server/quantize_reactor.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/server_context.h"
#include "proto/quant_config_conversion.h"
#include "server/status_mapping.h"
#include "spdlog/spdlog.h"

namespace rtnq::server {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

QuantizeReactor* QuantizeReactor::Create(ServiceContext& svc, grpc::CallbackServerContext* ctx,
                                         absl::Status admission) {
  std::shared_ptr<QuantizeReactor> r(new QuantizeReactor(svc, ctx));
  r->self_ = r;
  r->waiter_ = r;
  std::lock_guard<std::mutex> l(r->mu_);
  if (!admission.ok()) {
    r->Refuse(admission, admission.code() == absl::StatusCode::kUnauthenticated ? "unauthenticated"
                                                                                : "shutting_down");
    return r.get();
  }
  auto id = svc.streams->TryAdd(std::weak_ptr<StreamHandle>(r), svc.options->max_streams);
  if (!id.has_value()) {
    r->Refuse(absl::ResourceExhaustedError(
                  absl::StrCat("the server is at its limit of ", svc.options->max_streams,
                               " concurrent Quantize streams; retry later")),
              "max_streams");
    return r.get();
  }
  r->registry_id_ = *id;
  r->registered_ = true;
  svc.metrics->StreamStarted();
  Wakeups wake;
  r->Advance(wake);  // the first read
  return r.get();
}

QuantizeReactor::QuantizeReactor(ServiceContext& svc, grpc::CallbackServerContext* ctx)
    : svc_(svc),
      ctx_(ctx),
      peer_(ctx->peer()),
      start_(Clock::now()),
      memory_(*svc.memory, svc.options->stream_budget_bytes),
      last_activity_(start_) {}

void QuantizeReactor::Refuse(const absl::Status& status, const char* reason) {
  svc_.metrics->Rejected(reason);
  spdlog::warn("stream refused peer={} reason={} code={} message=\"{}\"", peer_, reason,
               absl::StatusCodeToString(status.code()), std::string(status.message()));
  state_ = State::kDone;
  Finish(ToGrpcStatus(status));
}

// ---------------------------------------------------------------------------------------------
// Events: each records what happened and lets Advance decide. Wakeups of other streams run
// after mu_ is released.
// ---------------------------------------------------------------------------------------------

void QuantizeReactor::OnReadDone(bool ok) {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    read_in_flight_ = false;
    read_done_ = true;
    read_ok_ = ok;
    if (ok) last_activity_ = Clock::now();
    Advance(wake);
  }
  WakeAll(wake);
}

void QuantizeReactor::OnWriteDone(bool ok) {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    write_in_flight_ = false;
    if (!writes_.empty()) {
      const int64_t bytes = writes_.front().bytes;
      if (ok) bytes_out_ += bytes;
      memory_.Release(bytes, wake);
      writes_.pop_front();
    }
    if (ok) {
      last_activity_ = Clock::now();
    } else {
      writes_failed_ = true;
      Fail(absl::CancelledError("the client stopped receiving"), nullptr);
    }
    Advance(wake);
  }
  WakeAll(wake);
}

void QuantizeReactor::OnCancel() {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    client_cancelled_ = true;
    Fail(absl::CancelledError("the call was cancelled"), nullptr);
    Advance(wake);
  }
  WakeAll(wake);
}

void QuantizeReactor::OnMemoryAvailable() {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    Advance(wake);
  }
  WakeAll(wake);
}

void QuantizeReactor::CheckIdle(Clock::time_point now) {
  const double timeout = svc_.options->idle_timeout_seconds;
  if (timeout <= 0) return;
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    // Idle means waiting on the client (to send, or to receive) with nothing running here.
    const bool waiting_on_client = (read_in_flight_ || write_in_flight_) && !task_running_;
    if (state_ != State::kDone && waiting_on_client &&
        std::chrono::duration<double>(now - last_activity_).count() > timeout) {
      Fail(absl::DeadlineExceededError(absl::StrCat("stream idle for more than ", timeout,
                                                    " s (the server's idle timeout)")),
           "idle_timeout");
      // A client that does not receive would block the flush and the Finish behind it forever:
      // give up on queued results, and cancel the call to complete the write in flight.
      abandon_writes_ = true;
      if (write_in_flight_) ctx_->TryCancel();
      Advance(wake);
    }
  }
  WakeAll(wake);
}

void QuantizeReactor::OnDone() {
  // Finish was called, every reaction has returned and no step runs: nothing can touch this
  // reactor any more except holders of a shared_ptr who are about to drop it.
  { std::lock_guard<std::mutex> l(mu_); }
  if (registered_) svc_.streams->Remove(registry_id_);
  self_.reset();
}

void QuantizeReactor::OnTaskDone(const std::shared_ptr<TensorJob>& job, JobStep step) {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    task_running_ = false;
    last_activity_ = Clock::now();
    memory_.Release(step.released_bytes, wake);
    if (step.finished) {
      switch (step.outcome) {
        case TensorOutcome::kQuantized:
          ++tensors_ok_;
          break;
        case TensorOutcome::kSkipped:
          ++tensors_skipped_;
          break;
        case TensorOutcome::kFailed:
          ++tensors_failed_;
          break;
      }
      svc_.metrics->TensorDone(job->dtype_label(), step.outcome, job->total_bytes(), step.seconds);
    }
    if (state_ != State::kFinishing && state_ != State::kDone) {
      for (auto& r : step.responses) Queue(std::move(r));
      // A tensor that failed while its data still arrives: drop the rest of it on arrival.
      if (step.finished && step.outcome == TensorOutcome::kFailed && open_.job == job &&
          state_ == State::kReceiving) {
        memory_.Release(open_.pending_bytes, wake);
        open_.pending.clear();
        open_.pending_bytes = 0;
        state_ = State::kDraining;
      }
    }
    Advance(wake);
  }
  WakeAll(wake);
}

// ---------------------------------------------------------------------------------------------
// The state machine
// ---------------------------------------------------------------------------------------------

void QuantizeReactor::Advance(Wakeups& wake) {
  if (state_ == State::kDone) return;
  if (read_done_) {
    read_done_ = false;
    ConsumeRead();
  }
  if (state_ == State::kAwaitMemory && memory_.TryReserve(open_.job->reserve_bytes(), waiter_)) {
    state_ = State::kReceiving;
    if (open_.job->total_bytes() == 0) CompleteTensor();
  }
  if (state_ == State::kFinishing) {
    // Deliver what is already queued unless the client is gone; then finish.
    const bool flush = !writes_failed_ && !client_cancelled_ && !abandon_writes_;
    if (flush && !write_in_flight_ && !writes_.empty()) StartNextWrite();
    if (!task_running_ && !write_in_flight_ && (writes_.empty() || !flush)) {
      FinishNow(final_status_, wake);
    }
    return;
  }
  if (!task_running_) {
    // Row streaming batches whatever arrived while the previous step ran.
    if (tasks_.empty() && state_ == State::kReceiving &&
        open_.job->mode() != TensorJob::Mode::kBuffered &&
        open_.pending_bytes >= open_.job->step_bytes()) {
      tasks_.push_back(Task{open_.job, std::move(open_.pending), false});
      open_.pending.clear();
      open_.pending_bytes = 0;
    }
    if (!tasks_.empty()) {
      Task t = std::move(tasks_.front());
      tasks_.pop_front();
      StartTask(std::move(t));
    }
  }
  if (!write_in_flight_ && !writes_.empty()) StartNextWrite();
  if (state_ == State::kClosing && !task_running_ && tasks_.empty() && !write_in_flight_ &&
      writes_.empty()) {
    if (summary_queued_) {
      FinishNow(absl::OkStatus(), wake);
      return;
    }
    v1::QuantizeResponse r;
    v1::SessionSummary* s = r.mutable_summary();
    s->set_tensors_ok(tensors_ok_);
    s->set_tensors_skipped(tensors_skipped_);
    s->set_tensors_failed(tensors_failed_);
    s->set_bytes_in(bytes_in_);
    s->set_bytes_out(bytes_out_);
    s->set_seconds(SecondsSince(start_));
    Queue(std::move(r));
    summary_queued_ = true;
    StartNextWrite();
  }
  const bool reading = state_ == State::kAwaitConfig || state_ == State::kAwaitHeader ||
                       state_ == State::kReceiving || state_ == State::kDraining;
  if (reading && !read_in_flight_ && MayRead()) {
    read_in_flight_ = true;
    request_.Clear();
    StartRead(&request_);
  }
}

bool QuantizeReactor::HoldsNothingReleasable() const {
  return !task_running_ && tasks_.empty() && !write_in_flight_ && writes_.empty();
}

bool QuantizeReactor::MayRead() {
  // Dropped data and a reserved whole tensor cost nothing more; otherwise the budgets decide,
  // except when waiting could only deadlock (nothing held will be released without more input).
  if (state_ == State::kAwaitConfig || state_ == State::kDraining) return true;
  if (state_ == State::kReceiving && open_.job->mode() == TensorJob::Mode::kBuffered) return true;
  return memory_.UnderLimits(waiter_) || HoldsNothingReleasable();
}

void QuantizeReactor::ConsumeRead() {
  if (!read_ok_) {  // half-close, or the call is gone
    if (client_cancelled_ || ctx_->IsCancelled()) {
      client_cancelled_ = true;
      Fail(absl::CancelledError("the call was cancelled"), nullptr);
      return;
    }
    switch (state_) {
      case State::kAwaitConfig:
        Fail(absl::FailedPreconditionError(
                 "the stream closed before its session config (the first message must be a "
                 "config)"),
             "protocol");
        break;
      case State::kAwaitHeader:
        state_ = State::kClosing;
        break;
      case State::kReceiving:
      case State::kDraining:
        Fail(absl::InvalidArgumentError(absl::StrCat(
                 "the stream closed with tensor \"", open_.job->name(), "\" incomplete: ",
                 open_.received, " of ", open_.job->total_bytes(), " bytes received")),
             "protocol");
        break;
      default:
        break;
    }
    return;
  }
  switch (request_.kind_case()) {
    case v1::QuantizeRequest::kConfig:
      OnConfig(request_.config());
      break;
    case v1::QuantizeRequest::kHeader:
      OnHeader(request_.header());
      break;
    case v1::QuantizeRequest::kChunk:
      OnChunk(*request_.mutable_chunk());
      break;
    default:
      Fail(absl::InvalidArgumentError("empty QuantizeRequest: set one of config, header or chunk"),
           "protocol");
      break;
  }
}

void QuantizeReactor::OnConfig(const v1::SessionConfig& config) {
  if (state_ != State::kAwaitConfig) {
    Fail(absl::FailedPreconditionError(
             "session config sent twice: only the first message of a stream is a config"),
         "protocol");
    return;
  }
  auto session = SessionFromProto(config);
  if (!session.ok()) {
    Fail(session.status(), "bad_config");
    return;
  }
  session_ = *std::move(session);
  v1::QuantizeResponse r;
  v1::SessionStarted* s = r.mutable_started();
  ConfigToProto(session_->resolver.default_config(), s->mutable_default_config());
  s->set_gptq_format(session_->gptq_format == GptqFormat::kV1 ? v1::GPTQ_FORMAT_V1
                                                              : v1::GPTQ_FORMAT_V2);
  s->set_max_tensor_bytes(svc_.options->max_tensor_bytes);
  s->set_max_message_bytes(svc_.options->max_message_bytes);
  s->set_candidates(static_cast<int32_t>(session_->candidates.size()));
  Queue(std::move(r));
  state_ = State::kAwaitHeader;
}

void QuantizeReactor::OnHeader(const v1::TensorHeader& header) {
  if (state_ == State::kAwaitConfig) {
    Fail(absl::FailedPreconditionError(
             absl::StrCat("tensor header \"", header.name(),
                          "\" before the session config: the first message must be a config")),
         "protocol");
    return;
  }
  if (state_ != State::kAwaitHeader) {
    Fail(absl::FailedPreconditionError(absl::StrCat("tensor header \"", header.name(),
                                                    "\" while tensor \"", open_.job->name(),
                                                    "\" is incomplete (", open_.received, " of ",
                                                    open_.job->total_bytes(), " bytes received)")),
         "protocol");
    return;
  }
  if (header.total_bytes() < 0) {
    Fail(absl::InvalidArgumentError(absl::StrCat("tensor \"", header.name(), "\": total_bytes ",
                                                 header.total_bytes(), " is negative")),
         "protocol");
    return;
  }
  if (header.total_bytes() > svc_.options->max_tensor_bytes) {
    Fail(absl::ResourceExhaustedError(absl::StrCat(
             "tensor \"", header.name(), "\": total_bytes ", header.total_bytes(),
             " exceeds the server's max_tensor_bytes ", svc_.options->max_tensor_bytes)),
         "tensor_too_large");
    return;
  }
  if (!names_.insert(header.name()).second) {
    Fail(absl::InvalidArgumentError(absl::StrCat("duplicate tensor name \"", header.name(),
                                                 "\": it was already sent in this stream")),
         "protocol");
    return;
  }
  open_ = OpenTensor{};
  open_.job =
      TensorJob::Plan(header, session_, *svc_.engine, &cancel_, svc_.options->output_chunk_bytes);
  if (open_.job->mode() == TensorJob::Mode::kFailed) {
    state_ = State::kDraining;
  } else if (open_.job->mode() == TensorJob::Mode::kBuffered || open_.job->reserve_bytes() > 0) {
    // Advance reserves what the tensor will hold (the whole input, or the codes kept for
    // packing) before reading on: a stream never holds more than it has been granted, apart
    // from the one message per stream of memory_budget.h.
    state_ = State::kAwaitMemory;
    return;
  } else {
    state_ = State::kReceiving;
  }
  if (open_.job->total_bytes() == 0) CompleteTensor();
}

void QuantizeReactor::OnChunk(v1::TensorChunk& chunk) {
  if (state_ == State::kAwaitConfig) {
    Fail(absl::FailedPreconditionError(
             "tensor chunk before the session config: the first message must be a config"),
         "protocol");
    return;
  }
  if (state_ != State::kReceiving && state_ != State::kDraining) {
    Fail(absl::FailedPreconditionError(absl::StrCat(
             "tensor chunk of ", chunk.data().size(),
             " bytes without an open tensor: send a TensorHeader first (data after a tensor's "
             "total_bytes is not allowed)")),
         "protocol");
    return;
  }
  const int64_t size = static_cast<int64_t>(chunk.data().size());
  const int64_t remaining = open_.job->total_bytes() - open_.received;
  if (size > remaining) {
    Fail(absl::InvalidArgumentError(absl::StrCat(
             "tensor \"", open_.job->name(), "\": chunk of ", size, " bytes exceeds the ",
             remaining, " bytes remaining of its total_bytes ", open_.job->total_bytes())),
         "protocol");
    return;
  }
  open_.received += size;
  bytes_in_ += size;
  if (state_ == State::kReceiving) {
    // Buffered tensors were reserved whole at their header; the rest is accounted on arrival.
    if (open_.job->mode() != TensorJob::Mode::kBuffered) memory_.ForceReserve(size);
    open_.pending.push_back(std::move(*chunk.mutable_data()));
    open_.pending_bytes += size;
  }
  if (open_.received == open_.job->total_bytes()) CompleteTensor();
}

void QuantizeReactor::CompleteTensor() {
  tasks_.push_back(Task{open_.job, std::move(open_.pending), /*last=*/true});
  open_ = OpenTensor{};
  state_ = State::kAwaitHeader;
}

void QuantizeReactor::StartTask(Task task) {
  task_running_ = true;
  std::shared_ptr<QuantizeReactor> self = self_;
  svc_.pool->Post([self, task = std::move(task)]() mutable {
    JobStep step = task.last ? task.job->Finish(std::move(task.chunks))
                             : task.job->AddData(std::move(task.chunks));
    self->OnTaskDone(task.job, std::move(step));
  });
}

void QuantizeReactor::Queue(v1::QuantizeResponse message) {
  const int64_t bytes =
      message.has_chunk() ? static_cast<int64_t>(message.chunk().data().size()) : 0;
  memory_.ForceReserve(bytes);
  writes_.push_back(Outgoing{std::move(message), bytes});
}

void QuantizeReactor::StartNextWrite() {
  write_in_flight_ = true;
  StartWrite(&writes_.front().message);
}

void QuantizeReactor::Fail(absl::Status status, const char* reason) {
  if (state_ == State::kFinishing || state_ == State::kDone) return;  // the first error wins
  final_status_ = std::move(status);
  state_ = State::kFinishing;
  cancel_.store(true);
  // Work not started is dropped; its memory goes back in FinishNow.
  tasks_.clear();
  open_ = OpenTensor{};
  if (reason != nullptr) svc_.metrics->Rejected(reason);
}

void QuantizeReactor::FinishNow(const absl::Status& status, Wakeups& wake) {
  state_ = State::kDone;
  tasks_.clear();
  writes_.clear();
  open_ = OpenTensor{};
  memory_.ReleaseAll(wake);
  const double seconds = SecondsSince(start_);
  svc_.metrics->StreamEnded(seconds);
  const auto level = status.ok() || status.code() == absl::StatusCode::kCancelled
                         ? spdlog::level::info
                         : spdlog::level::warn;
  spdlog::log(level,
              "stream end peer={} code={} tensors_ok={} tensors_skipped={} tensors_failed={} "
              "bytes_in={} bytes_out={} seconds={:.3f} message=\"{}\"",
              peer_, absl::StatusCodeToString(status.code()), tensors_ok_, tensors_skipped_,
              tensors_failed_, bytes_in_, bytes_out_, seconds, std::string(status.message()));
  Finish(ToGrpcStatus(status));
}

}  // namespace rtnq::server
