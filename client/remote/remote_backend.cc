#include "client/remote/remote_backend.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/remote/attempt_deadline.h"
#include "client/remote/channel.h"
#include "client/remote/status_conversion.h"
#include "core/crc32c.h"
#include "core/status_macros.h"
#include "proto/quant_config_conversion.h"
#include "rtnq/v1/rtnq.grpc.pb.h"

namespace rtnq::client {
namespace {

using Stream = grpc::ClientReaderWriter<v1::QuantizeRequest, v1::QuantizeResponse>;

v1::OutputForm FormOf(OutputFormat f) {
  switch (f) {
    case OutputFormat::kInc:
      return v1::OUTPUT_FORM_PACKED_INC;
    case OutputFormat::kGptq:
      return v1::OUTPUT_FORM_PACKED_GPTQ;
    case OutputFormat::kFake:
      break;
  }
  return v1::OUTPUT_FORM_FAKE_QUANT;
}

// The outcome of one attempt: a result or a status, and whether the stream is still usable.
struct Attempt {
  absl::StatusOr<TensorResult> result;
  bool stream_ok = true;
};

class RemoteSession : public Session {
 public:
  RemoteSession(const ClientOptions& options, std::shared_ptr<grpc::Channel> channel,
                std::string token, v1::SessionConfig config)
      : options_(options),
        stub_(v1::Quantizer::NewStub(std::move(channel))),
        token_(std::move(token)),
        config_(std::move(config)),
        rng_(std::random_device{}()),
        deadline_(options.deadline_seconds) {}

  ~RemoteSession() override { DropStream(); }

  // Opens the first stream, retrying transient failures.
  absl::Status Start() {
    absl::Status st;
    for (int attempt = 1; attempt <= std::max(1, options_.max_attempts); ++attempt) {
      if (attempt > 1) Backoff(attempt);
      st = OpenStream(attempt > 1);
      if (st.ok() || !IsTransient(st)) return st;
    }
    return st;
  }

  absl::StatusOr<TensorResult> Quantize(const TensorRequest& tensor) override {
    absl::Status last;
    const int max_attempts = std::max(1, options_.max_attempts);
    // Once per tensor, not per attempt.
    const uint32_t crc = tensor.crc32c.has_value()
                             ? *tensor.crc32c
                             : ComputeCrc32c(tensor.data.data(), tensor.data.size());
    for (int attempt = 1; attempt <= max_attempts; ++attempt) {
      if (attempt > 1) Backoff(attempt);
      if (stream_ == nullptr) {
        last = OpenStream(/*wait_for_ready=*/true);
        if (!last.ok()) {
          if (IsTransient(last)) continue;
          return last;
        }
      }
      deadline_.Arm(ctx_.get());
      Attempt a = Send(tensor, crc);
      const bool fired = deadline_.Disarm() || std::exchange(deadline_fired_, false);
      if (fired && !a.result.ok()) {
        a.result = absl::DeadlineExceededError(
            absl::StrCat(tensor.name, ": no answer within ", options_.deadline_seconds, " s"));
        a.stream_ok = false;
      }
      if (a.result.ok()) {
        a.result->attempts = attempt;
        // One stream per tensor: round_robin places every tensor afresh, so a replica that
        // connected late or came back gets work, and one lost after answering costs nothing.
        EndStream();
        return a.result;
      }
      last = a.result.status();
      if (!IsTransient(last)) {
        if (!a.stream_ok) DropStream();
        return last;
      }
      // A transient failure: reopen (round_robin picks the next replica) and resend.
      DropStream();
    }
    return last;
  }

  // Every result has arrived complete by now, so how the last stream ends cannot lose anything:
  // a replica that went away after answering must not fail the run.
  absl::Status Close() override {
    EndStream();
    return absl::OkStatus();
  }

 private:
  absl::Status OpenStream(bool wait_for_ready) {
    ctx_ = std::make_unique<grpc::ClientContext>();
    SetupCall(*ctx_, token_);
    // Waiting for a ready replica is bounded only by the attempt deadline, so without one
    // reconnects fail fast and the backoff loop does the waiting.
    ctx_->set_wait_for_ready(wait_for_ready && options_.deadline_seconds > 0);
    deadline_.Arm(ctx_.get());
    stream_ = stub_->Quantize(ctx_.get());
    v1::QuantizeRequest req;
    *req.mutable_config() = config_;
    v1::QuantizeResponse resp;
    if (!stream_->Write(req) || !stream_->Read(&resp)) {
      const absl::Status st = FinishBroken();
      if (std::exchange(deadline_fired_, false)) {
        return absl::DeadlineExceededError(
            absl::StrCat("no server answered within ", options_.deadline_seconds, " s"));
      }
      return st;
    }
    deadline_.Disarm();
    if (!resp.has_started()) {
      DropStream();
      return absl::InternalError("server did not answer the session config with SessionStarted");
    }
    peer_ = ctx_->peer();
    return absl::OkStatus();
  }

  // Ends a broken stream and returns why it broke.
  absl::Status FinishBroken() {
    const grpc::Status st = stream_->Finish();
    deadline_fired_ = deadline_.Disarm() || deadline_fired_;
    stream_.reset();
    ctx_.reset();
    absl::Status s = FromGrpcStatus(st);
    return s.ok() ? absl::UnavailableError("stream ended unexpectedly") : s;
  }

  // Ends a stream between tensors gracefully (half-close, drain the session summary), so the
  // server counts it as a completed session; its final status does not matter to any tensor.
  void EndStream() {
    if (stream_ == nullptr) return;
    deadline_.Arm(ctx_.get());
    stream_->WritesDone();
    v1::QuantizeResponse resp;
    while (stream_->Read(&resp)) {
    }
    (void)stream_->Finish();
    deadline_fired_ = false;
    (void)deadline_.Disarm();
    stream_.reset();
    ctx_.reset();
  }

  void DropStream() {
    if (stream_ == nullptr) return;
    ctx_->TryCancel();
    (void)stream_->Finish();
    deadline_fired_ = deadline_.Disarm() || deadline_fired_;
    stream_.reset();
    ctx_.reset();
  }

  void Backoff(int attempt) {
    double s = options_.initial_backoff_seconds;
    for (int i = 2; i < attempt && s < options_.max_backoff_seconds; ++i) s *= 2;
    s = std::min(s, options_.max_backoff_seconds);
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    std::this_thread::sleep_for(std::chrono::duration<double>(s * jitter(rng_)));
  }

  Attempt Send(const TensorRequest& t, uint32_t crc) {
    v1::QuantizeRequest req;
    auto* h = req.mutable_header();
    h->set_name(t.name);
    h->set_dtype(ElemTypeName(t.dtype));
    for (int64_t d : t.shape) h->add_shape(d);
    h->set_total_bytes(static_cast<int64_t>(t.data.size()));
    h->set_crc32c(crc);
    if (!stream_->Write(req)) return {FinishBroken(), false};
    const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, options_.chunk_bytes));
    for (size_t off = 0; off < t.data.size(); off += chunk) {
      const size_t n = std::min(chunk, t.data.size() - off);
      v1::QuantizeRequest c;
      c.mutable_chunk()->set_data(reinterpret_cast<const char*>(t.data.data()) + off, n);
      if (!stream_->Write(c)) return {FinishBroken(), false};
    }
    return Receive(t.name);
  }

  Attempt Receive(const std::string& name) {
    TensorResult result;
    result.name = name;
    result.served_by = peer_;
    std::vector<int64_t> filled;
    bool have_header = false;
    v1::QuantizeResponse resp;
    while (true) {
      if (!stream_->Read(&resp)) return {FinishBroken(), false};
      if (resp.has_error()) {
        return {StatusFromCode(resp.error().code(), resp.error().message()), true};
      }
      if (resp.has_result()) {
        const v1::ResultHeader& rh = resp.result();
        result.quantized = rh.quantized();
        result.skip_reason = rh.skip_reason();
        result.decided_by = rh.decided_by();
        result.match_kind = rh.match_kind();
        if (rh.has_config()) {
          auto cfg = ConfigFromProto(rh.config(), "server result config");
          if (!cfg.ok()) return {cfg.status(), false};
          result.config = *cfg;
        }
        for (const v1::OutputTensor& o : rh.outputs()) {
          PackedTensor p;
          p.name = o.name();
          auto dt = ParseElemType(o.dtype());
          if (!dt.ok()) return {dt.status(), false};
          p.dtype = *dt;
          p.shape.assign(o.shape().begin(), o.shape().end());
          if (o.total_bytes() < 0) {
            return {absl::DataLossError(absl::StrCat(name, ": bad output size")), false};
          }
          p.data.resize(static_cast<size_t>(o.total_bytes()));
          result.outputs.push_back(std::move(p));
        }
        filled.assign(result.outputs.size(), 0);
        have_header = true;
      } else if (resp.has_chunk()) {
        const v1::OutputChunk& c = resp.chunk();
        const size_t idx = c.output_index();
        if (!have_header || idx >= result.outputs.size() || c.offset() != filled[idx] ||
            c.offset() + static_cast<int64_t>(c.data().size()) >
                static_cast<int64_t>(result.outputs[idx].data.size())) {
          return {
              absl::DataLossError(absl::StrCat(name, ": output chunk out of order or range (index ",
                                               idx, ", offset ", c.offset(), ")")),
              false};
        }
        std::memcpy(result.outputs[idx].data.data() + c.offset(), c.data().data(), c.data().size());
        filled[idx] += static_cast<int64_t>(c.data().size());
      } else if (resp.has_metrics()) {
        for (size_t i = 0; i < filled.size(); ++i) {
          if (filled[i] != static_cast<int64_t>(result.outputs[i].data.size())) {
            return {absl::DataLossError(
                        absl::StrCat(name, ": output ", result.outputs[i].name, " incomplete")),
                    false};
          }
        }
        const v1::TensorMetrics& m = resp.metrics();
        result.metrics.elements = m.elements();
        result.metrics.groups = m.groups();
        result.metrics.mse = m.mse();
        result.metrics.max_abs_error = m.max_abs_error();
        result.metrics.snr_db = m.snr_db();
        result.metrics.clip_ratio = m.clip_ratio();
        result.metrics.quantize_seconds = m.quantize_seconds();
        result.metrics.server_seconds = m.server_seconds();
        return {std::move(result), true};
      } else {
        return {absl::InternalError(absl::StrCat(name, ": unexpected response from server")),
                false};
      }
    }
  }

  ClientOptions options_;
  std::unique_ptr<v1::Quantizer::Stub> stub_;
  std::string token_;
  v1::SessionConfig config_;
  std::mt19937 rng_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<Stream> stream_;
  std::string peer_;
  AttemptDeadline deadline_;
  bool deadline_fired_ = false;  ///< the deadline fired on a stream that is gone now
};

}  // namespace

RemoteBackend::RemoteBackend(ClientOptions options, std::shared_ptr<grpc::Channel> channel,
                             std::string token)
    : options_(std::move(options)), channel_(std::move(channel)), token_(std::move(token)) {}

absl::StatusOr<std::unique_ptr<RemoteBackend>> RemoteBackend::Create(ClientOptions options) {
  ASSIGN_OR_RETURN(auto channel, MakeChannel(options));
  ASSIGN_OR_RETURN(std::string token, ReadToken(options));
  return std::unique_ptr<RemoteBackend>(
      new RemoteBackend(std::move(options), std::move(channel), std::move(token)));
}

absl::StatusOr<std::unique_ptr<Session>> RemoteBackend::OpenSession(const SessionSpec& spec) {
  v1::SessionConfig config;
  config.set_config_json(spec.config_json);
  config.set_output_form(FormOf(spec.format));
  if (spec.format == OutputFormat::kGptq) {
    config.set_gptq_format(spec.gptq_format == GptqFormat::kV2 ? v1::GPTQ_FORMAT_V2
                                                               : v1::GPTQ_FORMAT_V1);
  }
  if (spec.format == OutputFormat::kInc) config.set_compression_dim(spec.compression_dim);
  config.set_expert_layout(ExpertLayoutToProto(spec.expert_layout));
  auto session = std::make_unique<RemoteSession>(options_, channel_, token_, std::move(config));
  RETURN_IF_ERROR(session->Start());
  return std::unique_ptr<Session>(std::move(session));
}

std::string RemoteBackend::Describe() const {
  return absl::StrCat(options_.server, " (round_robin)");
}

}  // namespace rtnq::client
