// Everything that configures an rtnq server. main.cc fills it from flags; tests fill it directly.
#pragma once

#include <cstdint>
#include <string>

namespace rtnq::server {

/// Options of RtnqServer. The defaults are what `rtnq-server` runs with when no flag is given.
struct ServerOptions {
  std::string listen = "0.0.0.0:50051";        ///< gRPC address; port 0 picks a free port
  std::string metrics_listen = "";             ///< Prometheus /metrics address; "" = no exposer
  int metrics_threads = 16;                    ///< /metrics connections served at once
  double metrics_request_timeout_seconds = 2;  ///< a /metrics request must arrive within this
  int threads = 0;                             ///< quantization threads; 0 = all cores
  std::string kernels = "";                    ///< "" = best for this CPU, or reference/avx2/avx512

  int64_t max_tensor_bytes = int64_t{4} << 30;       ///< larger tensors: RESOURCE_EXHAUSTED
  int64_t memory_budget_bytes = int64_t{2} << 30;    ///< in-flight bytes over all streams
  int64_t stream_budget_bytes = int64_t{256} << 20;  ///< in-flight bytes of one stream
  int max_streams = 64;                              ///< concurrent Quantize streams
  int64_t max_message_bytes = int64_t{8} << 20;      ///< largest request message accepted
  int64_t output_chunk_bytes = int64_t{1} << 20;     ///< data bytes per OutputChunk
  /// HTTP/2 receive window of each stream: what a client can send ahead of the server's reads.
  /// 0 = gRPC's windows grown by bandwidth probing (unbounded but for gRPC's quota).
  int64_t stream_window_bytes = int64_t{1} << 20;
  /// Largest reservation one tensor may take (its whole input or outputs when buffered, codes
  /// kept for packing, one row); larger: RESOURCE_EXHAUSTED at its header. 0 = twice
  /// max_tensor_bytes (MaxReservationBytes).
  int64_t max_reservation_bytes = 0;

  /// A stream that moves no data (chunk bytes in, output bytes out) for this long while waiting
  /// on its client ends (DEADLINE_EXCEEDED); 0 = never.
  double idle_timeout_seconds = 300;
  /// While a client owes bytes (a tensor's data, or results to receive), data must move at this
  /// average rate or the stream ends (DEADLINE_EXCEEDED); 0 = no minimum rate.
  double min_bytes_per_second = 64 << 10;
  /// The allowance of the rate rule: this long plus one max_message_bytes at the minimum rate.
  double min_rate_grace_seconds = 30;
  double max_stream_seconds = 0;  ///< a stream open longer ends; 0 = no limit
  /// Bytes of tensor names one stream may send: they are kept for its duplicate-name check
  /// until it ends. Past it the stream ends with RESOURCE_EXHAUSTED (open a new one).
  int64_t max_stream_name_bytes = int64_t{4} << 20;
  int session_cache_entries = 64;  ///< parsed session configs kept (LRU); 0 = no cache
  int64_t session_cache_bytes = int64_t{64} << 20;  ///< their charged bytes (session_cache.h)
  double shutdown_grace_seconds = 30;  ///< how long in-flight streams may finish on shutdown

  std::string tls_cert_file = "";       ///< PEM server certificate chain; "" = plaintext
  std::string tls_key_file = "";        ///< PEM private key (with tls_cert_file)
  std::string tls_client_ca_file = "";  ///< PEM CA: when set, clients must present a cert (mTLS)
  std::string auth_token_file = "";     ///< file holding the bearer token; "" = no token auth

  std::string version = "";  ///< reported by GetServerInfo and rtnq_build_info; "" = built-in
};

/// max_reservation_bytes with its default resolved.
inline int64_t MaxReservationBytes(const ServerOptions& o) {
  if (o.max_reservation_bytes > 0) return o.max_reservation_bytes;
  return o.max_tensor_bytes > INT64_MAX / 2 ? INT64_MAX : 2 * o.max_tensor_bytes;
}

}  // namespace rtnq::server
