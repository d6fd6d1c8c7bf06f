// The server's Prometheus metrics (prometheus-cpp), served on their own port.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace prometheus {
class Registry;
class Exposer;
class Counter;
class Gauge;
class Histogram;
template <typename T>
class Family;
}  // namespace prometheus

namespace rtnq::server {

/// How a tensor's processing ended, as the `outcome` label spells it.
enum class TensorOutcome { kQuantized, kSkipped, kFailed };
const char* TensorOutcomeName(TensorOutcome o);

/// The CivetWeb listening address for --metrics_listen: a bare port ("9090" or ":9090") binds
/// 127.0.0.1, so that exposing /metrics beyond the host takes an explicit host such as 0.0.0.0.
std::string MetricsBindAddress(const std::string& address);

/// Counters, gauges and histograms of one server, in their own registry (no global singleton).
/// Thread-safe. Names:
///   rtnq_tensors_total{dtype,outcome}, rtnq_bytes_processed_total{dtype,outcome},
///   rtnq_stream_duration_seconds, rtnq_tensor_duration_seconds (histograms),
///   rtnq_active_streams, rtnq_inflight_bytes (gauges), rtnq_rejections_total{reason},
///   rtnq_session_config_compilations_total, rtnq_session_cache_hits_total,
///   rtnq_build_info{version,kernel} = 1.
class ServerMetrics {
 public:
  ServerMetrics(const std::string& version, const std::string& kernel);
  ~ServerMetrics();

  /// Serves /metrics on `address` ("host:port", port 0 picks one; a bare port binds loopback)
  /// with `threads` connections served at once, each given `request_timeout_seconds` to send
  /// its whole request and to take the answer (one request per connection: no keep-alive).
  /// Returns the bound port.
  absl::StatusOr<int> StartExposer(const std::string& address, int threads,
                                   double request_timeout_seconds);

  void StreamStarted();
  void StreamEnded(double seconds);
  /// `dtype` is the input's safetensors name ("invalid" when it could not be parsed).
  void TensorDone(const std::string& dtype, TensorOutcome outcome, int64_t bytes, double seconds);
  /// A request refused or a stream ended by the server; `reason` is a short fixed token.
  void Rejected(const std::string& reason);
  void SetInflightBytes(int64_t bytes);
  /// A session config was parsed and its weight_config compiled (a session cache miss).
  void SessionConfigCompiled();
  /// A stream's session config was found in the session cache.
  void SessionCacheHit();

  /// Current values, for tests and logs.
  double inflight_bytes() const;
  double active_streams() const;
  /// The metrics in Prometheus' text format (what /metrics serves).
  std::string Text() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  prometheus::Family<prometheus::Counter>* tensors_;
  prometheus::Family<prometheus::Counter>* bytes_;
  prometheus::Family<prometheus::Counter>* rejections_;
  prometheus::Counter* config_compilations_;
  prometheus::Counter* session_cache_hits_;
  prometheus::Histogram* stream_seconds_;
  prometheus::Histogram* tensor_seconds_;
  prometheus::Gauge* active_streams_;
  prometheus::Gauge* inflight_bytes_;
};

}  // namespace rtnq::server
