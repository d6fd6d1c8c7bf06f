#include "client/plan/remote_measure.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/remote/channel.h"
#include "client/remote/retry_policy.h"
#include "core/column_errors.h"
#include "core/io/crc32c.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"
#include "proto/status_conversion.h"
#include "rtnq/v1/rtnq.grpc.pb.h"

namespace rtnq::client {

struct RemoteMeasurer::State {
  ClientOptions options;
  int streams = 1;
  std::unique_ptr<v1::Quantizer::Stub> stub;
  std::string token;
};

namespace {

// One tensor, one stream: config, SessionStarted, the tensor, then a (ResultHeader,
// TensorMetrics) pair per candidate and the summary. The server reads the whole tensor before
// answering (candidates need it whole), so writing it all before reading cannot deadlock.
absl::StatusOr<std::vector<CandidateMeasure>> MeasureOnce(
    const ClientOptions& options, v1::Quantizer::Stub& stub, const std::string& token,
    const MeasureRequest& req, const std::vector<Candidate>& candidates, uint32_t crc) {
  const TensorInfo& t = *req.tensor;
  grpc::ClientContext ctx;
  SetupCall(ctx, token);
  if (options.deadline_seconds > 0) {
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::duration_cast<std::chrono::system_clock::duration>(
                         std::chrono::duration<double>(options.deadline_seconds)));
  }
  auto stream = stub.Quantize(&ctx);
  auto broken = [&]() {
    absl::Status st = FromGrpcStatus(stream->Finish());
    return st.ok() ? absl::UnavailableError("stream ended unexpectedly") : st;
  };
  v1::QuantizeRequest req_config;
  v1::SessionConfig* config = req_config.mutable_config();
  config->set_metrics_only(true);
  config->set_column_errors(true);
  for (size_t k : req.candidates)
    config->add_candidate_configs_json(ConfigToJson(*candidates[k].config));
  v1::QuantizeResponse resp;
  if (!stream->Write(req_config) || !stream->Read(&resp)) return broken();
  if (!resp.has_started() || resp.started().candidates() != config->candidate_configs_json_size()) {
    ctx.TryCancel();
    (void)stream->Finish();
    return absl::UnimplementedError(
        absl::StrCat("server ", ctx.peer(),
                     " does not measure candidate configs (an rtnq-server older than "
                     "`rtnq plan`): upgrade it, or plan locally without --server"));
  }
  v1::QuantizeRequest header;
  v1::TensorHeader* h = header.mutable_header();
  h->set_name(t.name);
  h->set_dtype(ElemTypeName(t.dtype));
  for (int64_t d : t.shape) h->add_shape(d);
  h->set_total_bytes(static_cast<int64_t>(t.data.size()));
  h->set_crc32c(crc);
  if (!stream->Write(header)) return broken();
  const size_t chunk = static_cast<size_t>(std::max<int64_t>(1, options.chunk_bytes));
  for (size_t off = 0; off < t.data.size(); off += chunk) {
    v1::QuantizeRequest c;
    c.mutable_chunk()->set_data(reinterpret_cast<const char*>(t.data.data()) + off,
                                std::min(chunk, t.data.size() - off));
    if (!stream->Write(c)) return broken();
  }
  stream->WritesDone();
  static const TensorImportance kNone;
  const TensorImportance& imp = req.importance ? *req.importance : kNone;
  const size_t sums_expected = static_cast<size_t>(ErrorSlices(t.shape) * t.shape.back());
  std::vector<CandidateMeasure> out;
  while (out.size() < req.candidates.size()) {
    if (!stream->Read(&resp)) return broken();
    if (resp.has_error()) {
      ctx.TryCancel();
      (void)stream->Finish();
      return StatusFromCode(resp.error().code(), resp.error().message());
    }
    if (resp.has_result()) continue;
    if (!resp.has_metrics() || resp.metrics().candidate_index() != static_cast<int>(out.size()) ||
        static_cast<size_t>(resp.metrics().column_squared_errors_size()) != sums_expected) {
      ctx.TryCancel();
      (void)stream->Finish();
      return absl::DataLossError(absl::StrCat(TensorPrefix(t.name), "candidate ", out.size(),
                                              ": unexpected answer from ", ctx.peer()));
    }
    const v1::TensorMetrics& m = resp.metrics();
    const std::vector<double> sums(m.column_squared_errors().begin(),
                                   m.column_squared_errors().end());
    out.push_back(CandidateMeasure{WeightedError(sums, imp), m.mse(), m.snr_db()});
  }
  while (stream->Read(&resp)) {
  }
  (void)stream->Finish();  // every answer is in: how the stream ends loses nothing
  return out;
}

}  // namespace

RemoteMeasurer::RemoteMeasurer(std::unique_ptr<State> state) : state_(std::move(state)) {}
RemoteMeasurer::~RemoteMeasurer() = default;

absl::StatusOr<std::unique_ptr<RemoteMeasurer>> RemoteMeasurer::Create(ClientOptions options,
                                                                       int streams) {
  if (streams < 1) {
    return absl::InvalidArgumentError(absl::StrCat("streams must be at least 1, got ", streams));
  }
  auto s = std::make_unique<State>();
  RTNQ_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, MakeChannel(options));
  RTNQ_ASSIGN_OR_RETURN(s->token, ReadToken(options));
  s->stub = v1::Quantizer::NewStub(std::move(channel));
  s->options = std::move(options);
  s->streams = streams;
  return std::unique_ptr<RemoteMeasurer>(new RemoteMeasurer(std::move(s)));
}

absl::Status RemoteMeasurer::Measure(const std::vector<MeasureRequest>& requests,
                                     const std::vector<Candidate>& candidates,
                                     std::vector<std::vector<CandidateMeasure>>& out,
                                     const MeasureProgress& progress) {
  out.assign(requests.size(), {});
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  absl::Status first_error;
  auto worker = [&]() {
    std::mt19937 rng(std::random_device{}());
    while (!failed.load()) {
      const size_t r = next.fetch_add(1);
      if (r >= requests.size()) return;
      const MeasureRequest& req = requests[r];
      const uint32_t crc = ComputeCrc32c(req.tensor->data.data(), req.tensor->data.size());
      absl::StatusOr<std::vector<CandidateMeasure>> m;
      const int attempts = std::max(1, state_->options.max_attempts);
      double backoff = state_->options.initial_backoff_seconds;
      for (int a = 1; a <= attempts; ++a) {
        m = MeasureOnce(state_->options, *state_->stub, state_->token, req, candidates, crc);
        if (m.ok() || !IsTransient(m.status()) || a == attempts) break;
        std::uniform_real_distribution<double> jitter(0.5, 1.0);
        std::this_thread::sleep_for(std::chrono::duration<double>(backoff * jitter(rng)));
        backoff = std::min(backoff * 2, state_->options.max_backoff_seconds);
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!m.ok()) {
        if (first_error.ok()) {
          const std::string& name = req.tensor->name;
          first_error = absl::StrContains(m.status().message(), name)
                            ? m.status()
                            : absl::Status(m.status().code(),
                                           absl::StrCat(TensorPrefix(name), m.status().message()));
        }
        failed = true;
        return;
      }
      out[r] = *std::move(m);
      if (progress) progress(r);
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < state_->streams; ++i) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();
  return first_error;
}

std::string RemoteMeasurer::Describe() const {
  return absl::StrCat(state_->options.server, " (round_robin, ", state_->streams, " streams)");
}

}  // namespace rtnq::client
