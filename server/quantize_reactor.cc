#include "server/quantize_reactor.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/happens_before.h"
#include "core/tensor_text.h"
#include "proto/quant_config_conversion.h"
#include "proto/status_conversion.h"
#include "server/logging.h"
#include "server/request_codec.h"
#include "server/session_cache.h"
#include "spdlog/spdlog.h"

namespace rtnq::server {
namespace {

using Clock = std::chrono::steady_clock;

// Input a row-streamed step takes at most (or one row, if wider): what a step's outputs cost
// while they are built stays small, whatever the stream's budget.
constexpr int64_t kMaxStepInputBytes = int64_t{4} << 20;

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

std::shared_ptr<QuantizeReactor> QuantizeReactor::Start(ServiceContext& svc, StreamTransport& call,
                                                        std::string peer, absl::Status admission) {
  std::shared_ptr<QuantizeReactor> r(new QuantizeReactor(svc, call, std::move(peer)));
  r->waiter_ = r;
  std::lock_guard<std::mutex> l(r->mu_);
  if (!admission.ok()) {
    r->Refuse(admission, admission.code() == absl::StatusCode::kUnauthenticated ? "unauthenticated"
                                                                                : "shutting_down");
    return r;
  }
  auto id = svc.streams->TryAdd(std::weak_ptr<StreamHandle>(r), svc.options->max_streams);
  if (!id.has_value()) {
    r->Refuse(absl::ResourceExhaustedError(
                  absl::StrCat("the server is at its limit of ", svc.options->max_streams,
                               " concurrent Quantize streams (--max_streams); retry later")),
              "max_streams");
    return r;
  }
  r->registry_id_ = *id;
  r->registered_ = true;
  svc.metrics->StreamStarted();
  Wakeups wake;
  r->Advance(wake);  // the first read
  return r;
}

QuantizeReactor::QuantizeReactor(ServiceContext& svc, StreamTransport& call, std::string peer)
    : svc_(svc),
      call_(call),
      peer_(std::move(peer)),
      start_(Clock::now()),
      memory_(*svc.memory, svc.options->stream_budget_bytes),
      progress_(*svc.options, start_) {}

void QuantizeReactor::Refuse(const absl::Status& status, const char* reason) {
  svc_.metrics->Rejected(reason);
  spdlog::warn("stream refused peer={} reason={} code={} message=\"{}\"", LogSafe(peer_), reason,
               absl::StatusCodeToString(status.code()),
               LogSafe(status.message(), kMaxStatusMessageBytes));
  state_ = State::kDone;
  call_.Finish(ToGrpcStatus(status));
}

// ---------------------------------------------------------------------------------------------
// Events: each records what happened and lets Advance decide. Wakeups of other streams run
// after mu_ is released.
// ---------------------------------------------------------------------------------------------

void QuantizeReactor::OnReadDone(bool ok) {
  // Parsing costs O(message size): do it before taking the lock. The buffer is this read's
  // until the next StartRead, which only Advance issues after this event.
  v1::QuantizeRequest parsed;
  absl::Status parse_status;
  if (ok) parse_status = ParseRequest(read_buf_, ++messages_read_, parsed);
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    progress_.Update(Clock::now(), CurrentWait());
    read_in_flight_ = false;
    read_done_ = true;
    read_ok_ = ok;
    read_status_ = std::move(parse_status);
    request_.Swap(&parsed);
    Advance(wake);
  }
  WakeAll(wake);
}

void QuantizeReactor::OnWriteDone(bool ok) {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    progress_.Update(Clock::now(), CurrentWait());
    write_in_flight_ = false;
    if (!writes_.empty()) {
      Outgoing& w = writes_.front();
      if (ok) {
        bytes_out_ += w.bytes;
        progress_.Progress(w.bytes);
      }
      if (w.job != nullptr) Account(w.job->share().RemoveOutput(w.bytes), wake);
      writes_.pop_front();
    }
    if (!ok) {
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

void QuantizeReactor::CheckProgress(Clock::time_point now) {
  Wakeups wake;
  {
    // The sweeper checks every stream in turn: it must never wait on one. A stream holding its
    // lock is in an event handler (O(message size) work at most) and is checked next time.
    std::unique_lock<std::mutex> l(mu_, std::try_to_lock);
    if (!l.owns_lock() || state_ == State::kDone) return;
    progress_.Update(now, CurrentWait());
    const char* reason = nullptr;
    absl::Status status = progress_.Check(now, &reason);
    if (status.ok()) return;
    Fail(std::move(status), reason);
    // A client that does not receive would block the flush and the Finish behind it forever:
    // give up on queued results and on work, and cancel the call to complete the write in flight.
    abandon_writes_ = true;
    finish_complete_ = false;
    cancel_.store(true);
    if (write_in_flight_) call_.TryCancel();
    Advance(wake);
  }
  WakeAll(wake);
}

void QuantizeReactor::OnDone() {
  // Finish was called and no step or preparation runs: nothing can touch the transport any more.
  { std::lock_guard<std::mutex> l(mu_); }
  if (registered_) svc_.streams->Remove(registry_id_);
  // gRPC's Shutdown returns only after every OnDone, so the thread that then frees the server
  // comes after this stream's last transport call; the edge is inside gRPC, invisible to TSan.
  MarkHappensBefore(&svc_);
}

void QuantizeReactor::OnTaskDone(const std::shared_ptr<TensorJob>& job, JobStep step) {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    progress_.Update(Clock::now(), CurrentWait());
    task_running_ = false;
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
    // The input consumed, the outputs queued and (at the tensor's end) its reservation released
    // are applied as one change: the step never adds to the stream's account (memory_budget.h),
    // and another stream must not be granted memory that this one is about to take back.
    TensorShare& share = job->share();
    int64_t delta = share.ConsumeInput(step.consumed_bytes);
    if (open_.job == job) open_.consumed += step.consumed_bytes;
    const bool deliver =
        state_ != State::kDone && (state_ != State::kFinishing || (finish_complete_ && Flushing()));
    if (deliver) {
      for (auto& r : step.responses) delta += Queue(std::move(r), job);
    }
    if (step.finished) {
      delta += share.Close();
      // A tensor that failed while its data still arrives: drop the rest of it on arrival.
      if (open_.job == job && state_ == State::kReceiving) {
        open_.pending.clear();
        open_.pending_bytes = 0;
        state_ = State::kDraining;
      }
    }
    Account(delta, wake);
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
  if (state_ == State::kAwaitMemory &&
      memory_.TryReserve(open_.job->share().reservation(), waiter_, wake)) {
    open_.job->share().Granted();
    state_ = State::kReceiving;
    if (open_.job->total_bytes() == 0) CompleteTensor();
  }
  if (state_ == State::kFinishing) {
    // Deliver what is already queued (and, after a client's protocol error, answer the tensors
    // it sent whole) unless the client is gone; then finish.
    memory_.CancelReservation(waiter_, wake);
    const bool flush = Flushing();
    if (!flush) cancel_.store(true);  // nobody will read the answers of work still running
    if (!flush || !finish_complete_) tasks_.clear();
    if (!task_running_ && !tasks_.empty()) {
      Task t = std::move(tasks_.front());
      tasks_.pop_front();
      StartTask(std::move(t));
    }
    if (flush && !write_in_flight_ && !writes_.empty()) StartNextWrite();
    if (!task_running_ && !prep_running_ && !write_in_flight_ && tasks_.empty() &&
        (writes_.empty() || !flush)) {
      FinishNow(final_status_, wake);
      return;
    }
    progress_.Update(Clock::now(), CurrentWait());
    return;
  }
  if (!task_running_) {
    // Row streaming batches whatever arrived while the previous step ran, once a row completes.
    if (tasks_.empty() && state_ == State::kReceiving && StepReady()) {
      tasks_.push_back(TakeStep(/*last=*/false));
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
    Account(Queue(std::move(r), nullptr), wake);
    summary_queued_ = true;
    StartNextWrite();
  }
  const bool reading = state_ == State::kAwaitConfig || state_ == State::kAwaitHeader ||
                       state_ == State::kReceiving || state_ == State::kDraining;
  if (reading && !read_in_flight_ && MayRead()) {
    read_in_flight_ = true;
    call_.StartRead(&read_buf_);
  }
  progress_.Update(Clock::now(), CurrentWait());
}

ClientWait QuantizeReactor::CurrentWait() const {
  if (state_ == State::kDone) return ClientWait::kNone;
  const bool in_tensor = state_ == State::kReceiving || state_ == State::kDraining;
  if (write_in_flight_ || (read_in_flight_ && in_tensor)) return ClientWait::kOwed;
  if (read_in_flight_ && !task_running_ && !prep_running_) return ClientWait::kIdle;
  return ClientWait::kNone;
}

bool QuantizeReactor::MayRead() {
  switch (state_) {
    case State::kAwaitConfig:
    case State::kDraining:
      return true;  // a config is one message; dropped data costs nothing
    case State::kReceiving:
      // Within the tensor's floor (one row, or a whole buffered tensor) reading is reserved;
      // beyond it the budgets decide. A stream that may not read holds either a row to
      // quantize or outputs to write: it never deadlocks.
      if (open_.job->share().HasRoom()) return true;
      [[fallthrough]];
    default:
      return memory_.UnderLimits(waiter_);
  }
}

bool QuantizeReactor::StepReady() const {
  if (open_.pending.empty() || open_.job->mode() == TensorJob::Mode::kBuffered) return false;
  // What the job has not consumed (its partial row) plus what is pending completes a row.
  return open_.received - open_.consumed >= open_.job->step_bytes();
}

QuantizeReactor::Task QuantizeReactor::TakeStep(bool last) {
  Task t{open_.job, {}, last};
  const bool whole = open_.job->mode() == TensorJob::Mode::kBuffered;
  const int64_t cap = std::max(open_.job->step_bytes(), kMaxStepInputBytes);
  int64_t taken = 0;
  size_t n = 0;
  while (n < open_.pending.size() && (whole || taken < cap)) {
    taken += static_cast<int64_t>(open_.pending[n].size());
    ++n;
  }
  t.chunks.assign(std::make_move_iterator(open_.pending.begin()),
                  std::make_move_iterator(open_.pending.begin() + n));
  open_.pending.erase(open_.pending.begin(), open_.pending.begin() + n);
  open_.pending_bytes -= taken;
  t.last = last && open_.pending.empty();
  return t;
}

void QuantizeReactor::ConsumeRead() {
  // A read in flight when the stream failed (idle timeout, a write that failed) still completes:
  // whatever it brought is dropped.
  if (state_ == State::kFinishing) return;
  if (!read_ok_) {  // half-close, or the call is gone
    if (client_cancelled_ || call_.IsCancelled()) {
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
             "protocol", /*finish_complete=*/true);
        break;
      default:
        break;
    }
    return;
  }
  if (!read_status_.ok()) {
    Fail(read_status_, "protocol", /*finish_complete=*/true);
    return;
  }
  switch (request_.kind_case()) {
    case v1::QuantizeRequest::kConfig:
      OnConfig(*request_.mutable_config());
      break;
    case v1::QuantizeRequest::kHeader:
      OnHeader(*request_.mutable_header());
      break;
    case v1::QuantizeRequest::kChunk:
      OnChunk(*request_.mutable_chunk());
      break;
    default:
      Fail(absl::InvalidArgumentError("empty QuantizeRequest: set one of config, header or chunk"),
           "protocol", /*finish_complete=*/true);
      break;
  }
}

void QuantizeReactor::OnConfig(v1::SessionConfig& config) {
  if (state_ != State::kAwaitConfig) {
    Fail(absl::FailedPreconditionError(
             "session config sent twice: only the first message of a stream is a config"),
         "protocol", /*finish_complete=*/true);
    return;
  }
  // Parsing config_json and compiling weight_config cost up to the message's size and more:
  // on the work pool, while the stream reads nothing. The cache makes a config's second stream
  // cost a digest of its bytes instead.
  state_ = State::kStarting;
  prep_running_ = true;
  svc_.pool->Post([self = shared_from_this(), config = std::move(config)]() {
    self->OnSessionReady(self->svc_.sessions != nullptr ? self->svc_.sessions->Get(config)
                                                        : SessionFromProto(config));
  });
}

void QuantizeReactor::OnSessionReady(absl::StatusOr<std::shared_ptr<const ParsedSession>> session) {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    prep_running_ = false;
    if (state_ == State::kStarting) {
      if (!session.ok()) {
        Fail(session.status(), "bad_config");
      } else {
        session_ = *std::move(session);
        v1::QuantizeResponse r;
        v1::SessionStarted* s = r.mutable_started();
        ConfigToProto(session_->resolver.default_config(), s->mutable_default_config());
        s->set_gptq_format(session_->gptq_format == GptqFormat::kV1 ? v1::GPTQ_FORMAT_V1
                                                                    : v1::GPTQ_FORMAT_V2);
        s->set_max_tensor_bytes(svc_.options->max_tensor_bytes);
        s->set_max_message_bytes(svc_.options->max_message_bytes);
        s->set_candidates(static_cast<int32_t>(session_->candidates.size()));
        Account(Queue(std::move(r), nullptr), wake);
        state_ = State::kAwaitHeader;
      }
    }
    Advance(wake);
  }
  WakeAll(wake);
}

void QuantizeReactor::OnHeader(v1::TensorHeader& header) {
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
         "protocol", /*finish_complete=*/true);
    return;
  }
  if (header.total_bytes() < 0) {
    Fail(absl::InvalidArgumentError(absl::StrCat(TensorPrefix(header.name()), "total_bytes ",
                                                 header.total_bytes(), " is negative")),
         "protocol", /*finish_complete=*/true);
    return;
  }
  if (header.total_bytes() > svc_.options->max_tensor_bytes) {
    Fail(absl::ResourceExhaustedError(
             absl::StrCat(TensorPrefix(header.name()), "total_bytes ", header.total_bytes(),
                          " exceeds the server's max_tensor_bytes ", svc_.options->max_tensor_bytes,
                          " (--max_tensor_bytes)")),
         "tensor_too_large", /*finish_complete=*/true);
    return;
  }
  const int64_t name_size = static_cast<int64_t>(header.name().size());
  if (name_bytes_ + name_size > svc_.options->max_stream_name_bytes) {
    Fail(absl::ResourceExhaustedError(absl::StrCat(
             "the server's --max_stream_name_bytes ", svc_.options->max_stream_name_bytes,
             " would be passed: this stream has sent ", names_.size(), " tensor names of ",
             name_bytes_,
             " bytes (kept for its duplicate-name check); open a new stream for "
             "more tensors (next tensor \"",
             header.name(), "\")")),
         "stream_names", /*finish_complete=*/true);
    return;
  }
  if (!names_.insert(header.name()).second) {
    Fail(absl::InvalidArgumentError(absl::StrCat("duplicate tensor name \"", header.name(),
                                                 "\": it was already sent in this stream")),
         "protocol", /*finish_complete=*/true);
    return;
  }
  name_bytes_ += name_size;
  // Resolving the tensor's config (weight_config patterns against its name) and planning it:
  // on the work pool, while the stream reads nothing.
  state_ = State::kPlanning;
  prep_running_ = true;
  const PlanLimits limits{svc_.options->output_chunk_bytes, MaxReservationBytes(*svc_.options)};
  svc_.pool->Post([self = shared_from_this(), header = std::move(header), session = session_,
                   limits]() {
    if (self->svc_.hooks.before_plan) self->svc_.hooks.before_plan(header.name());
    self->OnPlanned(TensorJob::Plan(header, session, *self->svc_.engine, &self->cancel_, limits));
  });
}

void QuantizeReactor::OnPlanned(std::shared_ptr<TensorJob> job) {
  Wakeups wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    prep_running_ = false;
    if (state_ == State::kPlanning) {
      open_ = OpenTensor{};
      open_.job = std::move(job);
      if (open_.job->mode() == TensorJob::Mode::kFailed) {
        state_ = State::kDraining;  // its data costs nothing: no reservation
        if (open_.job->total_bytes() == 0) CompleteTensor();
      } else {
        // Advance reserves what the tensor will hold before reading on; every tensor takes its
        // turn in the budget's FIFO, even with nothing to reserve.
        state_ = State::kAwaitMemory;
      }
    }
    Advance(wake);
  }
  WakeAll(wake);
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
         "protocol", /*finish_complete=*/true);
    return;
  }
  const int64_t size = static_cast<int64_t>(chunk.data().size());
  const int64_t remaining = open_.job->total_bytes() - open_.received;
  if (size > remaining) {
    Fail(absl::InvalidArgumentError(absl::StrCat(
             TensorPrefix(open_.job->name()), "chunk of ", size, " bytes exceeds the ", remaining,
             " bytes remaining of its total_bytes ", open_.job->total_bytes())),
         "protocol", /*finish_complete=*/true);
    return;
  }
  open_.received += size;
  bytes_in_ += size;
  progress_.Progress(size);
  if (state_ == State::kReceiving && size > 0) {
    Wakeups none;  // adding never wakes anyone
    Account(open_.job->share().AddInput(size), none);
    open_.pending.push_back(std::move(*chunk.mutable_data()));
    open_.pending_bytes += size;
  }
  if (open_.received == open_.job->total_bytes()) CompleteTensor();
}

void QuantizeReactor::CompleteTensor() {
  // Row-streamed data still pending goes in capped steps; a buffered tensor in one.
  do {
    tasks_.push_back(TakeStep(/*last=*/true));
  } while (!tasks_.back().last);
  open_ = OpenTensor{};
  state_ = State::kAwaitHeader;
}

void QuantizeReactor::StartTask(Task task) {
  task_running_ = true;
  svc_.pool->Post([self = shared_from_this(), task = std::move(task)]() mutable {
    JobStep step = task.last ? task.job->Finish(std::move(task.chunks))
                             : task.job->AddData(std::move(task.chunks));
    self->OnTaskDone(task.job, std::move(step));
  });
}

int64_t QuantizeReactor::Queue(v1::QuantizeResponse message, std::shared_ptr<TensorJob> job) {
  const int64_t bytes =
      message.has_chunk() ? static_cast<int64_t>(message.chunk().data().size()) : 0;
  const int64_t delta = job != nullptr ? job->share().AddOutput(bytes) : bytes;
  writes_.push_back(Outgoing{std::move(message), bytes, std::move(job)});
  return delta;
}

void QuantizeReactor::StartNextWrite() {
  Outgoing& w = writes_.front();
  absl::Status s = SerializeResponse(w.message, write_buf_);
  v1::QuantizeResponse().Swap(&w.message);  // the serialized copy is what stays in memory
  if (!s.ok()) {
    // Cannot happen for messages this server builds; the stream cannot go on without it.
    abandon_writes_ = true;
    Fail(s, nullptr);
    return;
  }
  write_in_flight_ = true;
  call_.StartWrite(&write_buf_);
}

void QuantizeReactor::Fail(absl::Status status, const char* reason, bool finish_complete) {
  if (state_ == State::kFinishing || state_ == State::kDone) return;  // the first error wins
  final_status_ = std::move(status);
  state_ = State::kFinishing;  // Advance leaves the reservation line, if in it
  finish_complete_ = finish_complete;
  if (!finish_complete) {
    cancel_.store(true);
    tasks_.clear();  // work not started is dropped; its memory goes back in FinishNow
  }
  open_ = OpenTensor{};  // the open tensor's pending data goes with it
  if (reason != nullptr) svc_.metrics->Rejected(reason);
}

void QuantizeReactor::FinishNow(const absl::Status& status, Wakeups& wake) {
  state_ = State::kDone;
  tasks_.clear();
  writes_.clear();
  open_ = OpenTensor{};
  memory_.CancelReservation(waiter_, wake);
  memory_.ReleaseAll(wake);
  const double seconds = SecondsSince(start_);
  svc_.metrics->StreamEnded(seconds);
  const auto level = status.ok() || status.code() == absl::StatusCode::kCancelled
                         ? spdlog::level::info
                         : spdlog::level::warn;
  spdlog::log(level,
              "stream end peer={} code={} tensors_ok={} tensors_skipped={} tensors_failed={} "
              "bytes_in={} bytes_out={} seconds={:.3f} message=\"{}\"",
              LogSafe(peer_), absl::StatusCodeToString(status.code()), tensors_ok_,
              tensors_skipped_, tensors_failed_, bytes_in_, bytes_out_, seconds,
              LogSafe(status.message(), kMaxStatusMessageBytes));
  call_.Finish(ToGrpcStatus(status));
}

}  // namespace rtnq::server
