// Everything that configures an rtnq server. main.cc fills it from flags; tests fill it directly.
#pragma once

#include <cstdint>
#include <string>

namespace rtnq::server {

/// Options of RtnqServer. The defaults are what `rtnq-server` runs with when no flag is given.
struct ServerOptions {
  std::string listen = "0.0.0.0:50051";  ///< gRPC address; port 0 picks a free port
  std::string metrics_listen = "";       ///< Prometheus /metrics address; "" = no exposer
  int threads = 0;                       ///< quantization threads; 0 = all cores
  std::string kernels = "";              ///< "" = best for this CPU, or reference/avx2/avx512

  int64_t max_tensor_bytes = int64_t{4} << 30;       ///< larger tensors: RESOURCE_EXHAUSTED
  int64_t memory_budget_bytes = int64_t{2} << 30;    ///< in-flight bytes over all streams
  int64_t stream_budget_bytes = int64_t{256} << 20;  ///< in-flight bytes of one stream
  int max_streams = 64;                              ///< concurrent Quantize streams
  int64_t max_message_bytes = int64_t{8} << 20;      ///< largest request message accepted
  int64_t output_chunk_bytes = int64_t{1} << 20;     ///< data bytes per OutputChunk
  int session_cache_entries = 64;  ///< parsed session configs kept (LRU); 0 = no cache
  int64_t session_cache_bytes = int64_t{64} << 20;  ///< their charged bytes (session_cache.h)
  double idle_timeout_seconds = 300;   ///< a stream with no progress this long ends; 0 = never
  double shutdown_grace_seconds = 30;  ///< how long in-flight streams may finish on shutdown

  std::string tls_cert_file = "";       ///< PEM server certificate chain; "" = plaintext
  std::string tls_key_file = "";        ///< PEM private key (with tls_cert_file)
  std::string tls_client_ca_file = "";  ///< PEM CA: when set, clients must present a cert (mTLS)
  std::string auth_token_file = "";     ///< file holding the bearer token; "" = no token auth

  std::string version = "";  ///< reported by GetServerInfo and rtnq_build_info; "" = built-in
};

}  // namespace rtnq::server
