#include "client/remote/remote_backend.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "client/checkpoint_util.h"
#include "client/remote/attempt_deadline.h"
#include "client/remote/channel.h"
#include "client/remote/quantize_stream.h"
#include "client/remote/retry_policy.h"
#include "core/io/crc32c.h"
#include "core/status_macros.h"
#include "proto/quant_config_conversion.h"
#include "proto/status_conversion.h"
#include "rtnq/v1/rtnq.grpc.pb.h"

namespace rtnq::client {
namespace {

using Clock = std::chrono::steady_clock;

// A session: one live stream at a time, carrying tensor after tensor. The stream is replaced when
// it breaks (the tensor is retried on the new one, which round_robin may place on another
// replica) and rotated after a while (ClientOptions::stream_max_*), so that round_robin keeps
// spreading the work over the replicas, including those that joined after the session opened.
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

  ~RemoteSession() override { stream_.reset(); }

  // Opens the first stream, retrying transient failures: a bad config fails here.
  absl::Status Start() {
    absl::Status st;
    for (int attempt = 1; attempt <= std::max(1, options_.max_attempts); ++attempt) {
      if (attempt > 1) Backoff(attempt);
      st = OpenStream(attempt > 1);
      if (st.ok() || !IsTransient(st)) return st;
    }
    return st;
  }

  absl::StatusOr<TensorResult> Quantize(const TensorRequest& request, ResultSink& sink) override {
    const TensorInput& tensor = request.tensor;
    absl::Status last;
    const int max_attempts = std::max(1, options_.max_attempts);
    // Once per tensor, not per attempt.
    const uint32_t crc = request.crc32c.has_value()
                             ? *request.crc32c
                             : ComputeCrc32c(tensor.data.data(), tensor.data.size());
    int tries = 0;
    bool stale_retry_left = true;
    for (int attempt = 1; attempt <= max_attempts; ++attempt) {
      if (attempt > 1) Backoff(attempt);
      if (stream_ != nullptr && (Worn(*stream_) || stream_->Carried(tensor.name))) EndStream();
      if (stream_ == nullptr) {
        last = OpenStream(/*wait_for_ready=*/true);
        if (!last.ok()) {
          if (IsTransient(last)) continue;
          break;
        }
      }
      const bool reused = stream_->tensors() > 0;
      ++tries;
      TensorAttempt a = stream_->Quantize(tensor, crc, sink);
      if (!a.stream_usable) stream_.reset();
      if (a.result.ok()) {
        a.result->attempts = tries;
        return a.result;
      }
      sink.Discard();
      last = a.result.status();
      if (!IsTransient(last)) return last;
      // A stream that carried earlier tensors may have died while idle (its replica went away
      // between tensors): one retry on a fresh stream does not count as an attempt, as it would
      // not have with a stream per tensor.
      if (reused && !a.stream_usable && stale_retry_left) {
        stale_retry_left = false;
        --attempt;
      }
      // Retried on a new stream, which round_robin places on the next replica.
      EndStream();
    }
    sink.Discard();
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
    // Waiting for a ready replica is bounded only by the attempt deadline, so without one
    // reconnects fail fast and the backoff loop does the waiting.
    absl::StatusOr<std::unique_ptr<QuantizeStream>> s = QuantizeStream::Open(
        *stub_, token_, config_, wait_for_ready && options_.deadline_seconds > 0,
        options_.chunk_bytes, deadline_);
    if (!s.ok()) return s.status();
    stream_ = *std::move(s);
    ++streams_opened_;
    return absl::OkStatus();
  }

  void EndStream() {
    if (stream_ == nullptr) return;
    stream_->End();
    stream_.reset();
  }

  // The rotation rule: the session's k-th stream is ended before the next tensor once it carried
  // min(2^(k-1), stream_max_tensors) tensors or stream_max_bytes bytes, or has been open
  // stream_max_seconds (0: no limit of that kind). The doubling start places a session's first
  // tensors on several streams, so a run reaches every replica even when some connect late.
  bool Worn(const QuantizeStream& s) const {
    const double age = std::chrono::duration<double>(Clock::now() - s.opened()).count();
    const int64_t ramp = int64_t{1} << std::min(streams_opened_ - 1, 30);
    const int64_t max_tensors = std::min<int64_t>(options_.stream_max_tensors, ramp);
    return (options_.stream_max_tensors > 0 && s.tensors() >= max_tensors) ||
           (options_.stream_max_bytes > 0 && s.bytes() >= options_.stream_max_bytes) ||
           (options_.stream_max_seconds > 0 && age >= options_.stream_max_seconds);
  }

  void Backoff(int attempt) {
    double s = options_.initial_backoff_seconds;
    for (int i = 2; i < attempt && s < options_.max_backoff_seconds; ++i) s *= 2;
    s = std::min(s, options_.max_backoff_seconds);
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    std::this_thread::sleep_for(std::chrono::duration<double>(s * jitter(rng_)));
  }

  ClientOptions options_;
  std::unique_ptr<v1::Quantizer::Stub> stub_;
  std::string token_;
  v1::SessionConfig config_;
  std::mt19937 rng_;
  AttemptDeadline deadline_;  // before stream_: the stream refers to it
  std::unique_ptr<QuantizeStream> stream_;
  int streams_opened_ = 0;
};

}  // namespace

RemoteBackend::RemoteBackend(ClientOptions options, std::shared_ptr<grpc::Channel> channel,
                             std::string token)
    : options_(std::move(options)), channel_(std::move(channel)), token_(std::move(token)) {}

absl::StatusOr<std::unique_ptr<RemoteBackend>> RemoteBackend::Create(ClientOptions options) {
  RTNQ_ASSIGN_OR_RETURN(auto channel, MakeChannel(options));
  RTNQ_ASSIGN_OR_RETURN(std::string token, ReadToken(options));
  return std::unique_ptr<RemoteBackend>(
      new RemoteBackend(std::move(options), std::move(channel), std::move(token)));
}

absl::StatusOr<std::unique_ptr<Session>> RemoteBackend::OpenSession(const SessionSpec& spec) {
  v1::SessionConfig config;
  config.set_config_json(spec.config_json);
  config.set_output_form(OutputLayoutToProto(spec.format));
  if (spec.format == OutputLayout::kGptq) {
    v1::GptqFormat gptq = v1::GPTQ_FORMAT_DEFAULT;
    v1::GptqFormat_Parse(GptqFormatWireName(spec.gptq_format), &gptq);
    config.set_gptq_format(gptq);
  }
  if (spec.format == OutputLayout::kInc) config.set_compression_dim(spec.compression_dim);
  config.set_expert_layout(ExpertLayoutToProto(spec.expert_layout));
  auto session = std::make_unique<RemoteSession>(options_, channel_, token_, std::move(config));
  RTNQ_RETURN_IF_ERROR(session->Start());
  return std::unique_ptr<Session>(std::move(session));
}

std::string RemoteBackend::Describe() const {
  return absl::StrCat(options_.server, " (round_robin)");
}

}  // namespace rtnq::client
