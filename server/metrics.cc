#include "server/metrics.h"

#include <algorithm>
#include <cmath>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace rtnq::server {

const char* TensorOutcomeName(TensorOutcome o) {
  switch (o) {
    case TensorOutcome::kQuantized:
      return "quantized";
    case TensorOutcome::kSkipped:
      return "skipped";
    case TensorOutcome::kFailed:
      return "failed";
  }
  return "unknown";
}

std::string MetricsBindAddress(const std::string& address) {
  const std::string port = absl::StartsWith(address, ":") ? address.substr(1) : address;
  const bool bare_port =
      !port.empty() && std::all_of(port.begin(), port.end(), absl::ascii_isdigit);
  return bare_port ? absl::StrCat("127.0.0.1:", port) : address;
}

ServerMetrics::ServerMetrics(const std::string& version, const std::string& kernel)
    : registry_(std::make_shared<prometheus::Registry>()) {
  using prometheus::BuildCounter;
  using prometheus::BuildGauge;
  using prometheus::BuildHistogram;
  tensors_ = &BuildCounter()
                  .Name("rtnq_tensors_total")
                  .Help("Tensors processed, by input dtype and outcome")
                  .Register(*registry_);
  bytes_ = &BuildCounter()
                .Name("rtnq_bytes_processed_total")
                .Help("Tensor data bytes received, by input dtype and outcome")
                .Register(*registry_);
  rejections_ = &BuildCounter()
                     .Name("rtnq_rejections_total")
                     .Help("Requests refused and streams ended by the server, by reason")
                     .Register(*registry_);
  config_compilations_ =
      &BuildCounter()
           .Name("rtnq_session_config_compilations_total")
           .Help("Session configs parsed and compiled (weight_config included): cache misses")
           .Register(*registry_)
           .Add({});
  session_cache_hits_ = &BuildCounter()
                             .Name("rtnq_session_cache_hits_total")
                             .Help("Streams whose session config was already compiled")
                             .Register(*registry_)
                             .Add({});
  // Streams last from milliseconds (one small tensor) to many minutes (a whole checkpoint).
  stream_seconds_ = &BuildHistogram()
                         .Name("rtnq_stream_duration_seconds")
                         .Help("Duration of Quantize streams")
                         .Register(*registry_)
                         .Add({}, prometheus::Histogram::BucketBoundaries{
                                      0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600});
  // A tensor takes from microseconds (a norm) to seconds (a 500 MB embedding with MSE search).
  tensor_seconds_ =
      &BuildHistogram()
           .Name("rtnq_tensor_duration_seconds")
           .Help("Server time per tensor, from its header to its complete result")
           .Register(*registry_)
           .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.005, 0.01, 0.05, 0.1,
                                                            0.25, 0.5, 1, 2.5, 5, 10, 30});
  active_streams_ = &BuildGauge()
                         .Name("rtnq_active_streams")
                         .Help("Quantize streams in progress")
                         .Register(*registry_)
                         .Add({});
  inflight_bytes_ =
      &BuildGauge()
           .Name("rtnq_inflight_bytes")
           .Help("Bytes held for streams: input not yet consumed, output not yet sent")
           .Register(*registry_)
           .Add({});
  BuildGauge()
      .Name("rtnq_build_info")
      .Help("Build and runtime information; always 1")
      .Register(*registry_)
      .Add({{"version", version}, {"kernel", kernel}})
      .Set(1);
}

ServerMetrics::~ServerMetrics() = default;

absl::StatusOr<int> ServerMetrics::StartExposer(const std::string& address, int threads,
                                                double request_timeout_seconds) {
  // CivetWeb gives each connection a worker thread until its request is answered, and by default
  // waits 30 s for a request to arrive: a few clients that connect and send slowly (or nothing)
  // would hold every worker and block scrapes. A short timeout on the whole request (it counts
  // from the connection's first wait, so a trickle cannot extend it) frees a worker quickly, and
  // without keep-alive no idle connection keeps one. A scrape then waits at most about
  // ceil(slow clients / threads) timeouts.
  const int64_t timeout_ms =
      std::max<int64_t>(1, std::llround(request_timeout_seconds * 1000));  // CivetWeb: 0 = 30 s
  std::vector<std::string> options = {"listening_ports",    MetricsBindAddress(address),
                                      "num_threads",        std::to_string(threads),
                                      "request_timeout_ms", std::to_string(timeout_ms),
                                      "enable_keep_alive",  "no"};
  // prometheus-cpp (civetweb) reports bind failures by throwing; keep them inside this boundary.
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(std::move(options));
    exposer_->RegisterCollectable(registry_);
    const std::vector<int> ports = exposer_->GetListeningPorts();
    if (ports.empty()) return absl::InternalError("metrics exposer bound no port");
    return ports.front();
  } catch (const std::exception& e) {
    exposer_.reset();
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics_listen \"", address, "\": cannot serve /metrics: ", e.what()));
  }
}

void ServerMetrics::StreamStarted() { active_streams_->Increment(); }

void ServerMetrics::StreamEnded(double seconds) {
  active_streams_->Decrement();
  stream_seconds_->Observe(seconds);
}

void ServerMetrics::TensorDone(const std::string& dtype, TensorOutcome outcome, int64_t bytes,
                               double seconds) {
  const prometheus::Labels labels{{"dtype", dtype}, {"outcome", TensorOutcomeName(outcome)}};
  tensors_->Add(labels).Increment();
  bytes_->Add(labels).Increment(static_cast<double>(bytes));
  tensor_seconds_->Observe(seconds);
}

void ServerMetrics::Rejected(const std::string& reason) {
  rejections_->Add({{"reason", reason}}).Increment();
}

void ServerMetrics::SetInflightBytes(int64_t bytes) {
  inflight_bytes_->Set(static_cast<double>(bytes));
}

void ServerMetrics::SessionConfigCompiled() { config_compilations_->Increment(); }

void ServerMetrics::SessionCacheHit() { session_cache_hits_->Increment(); }

double ServerMetrics::inflight_bytes() const { return inflight_bytes_->Value(); }
double ServerMetrics::active_streams() const { return active_streams_->Value(); }

std::string ServerMetrics::Text() const {
  return prometheus::TextSerializer().Serialize(registry_->Collect());
}

}  // namespace rtnq::server
