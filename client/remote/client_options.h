// How the rtnq client reaches its servers: target, TLS, auth, retries and framing sizes. The CLI
// fills it from flags; nothing here parses flags.
#pragma once

#include <cstdint>
#include <string>

namespace rtnq::client {

/// Connection and retry settings of the remote backend.
struct ClientOptions {
  /// "host:port", a comma list "h1:p1,h2:p2" (round_robin over all) or "dns:///name:port".
  std::string server = "127.0.0.1:50051";
  std::string tls_ca_file;      ///< PEM roots; TLS is on when any TLS file is set
  std::string tls_cert_file;    ///< PEM client certificate (mutual TLS)
  std::string tls_key_file;     ///< PEM client key (mutual TLS)
  std::string tls_server_name;  ///< overrides the name checked in the server certificate
  std::string token_file;       ///< sent as "authorization: Bearer <token>"; "" = none
  double deadline_seconds = 0;  ///< per tensor attempt; 0 = none
  int max_attempts = 4;         ///< attempts per tensor, including the first
  double initial_backoff_seconds = 0.1;
  double max_backoff_seconds = 5.0;
  int64_t chunk_bytes = 1 << 20;  ///< TensorChunk size
  /// Stream rotation: a session's stream carries tensor after tensor (the config is sent once
  /// per stream) and is replaced by a new one before the next tensor once it has carried
  /// stream_max_tensors tensors (a session's k-th stream: min(2^(k-1), stream_max_tensors), so
  /// its first tensors are spread over several streams) or stream_max_bytes bytes, or been open
  /// stream_max_seconds. Each new stream is placed by round_robin, so the work keeps spreading
  /// over the replicas (also those whose connection came up late), a replica that joined mid-run
  /// gets streams within stream_max_seconds, and one that shuts down sees its streams leave
  /// within stream_max_seconds plus one tensor, well inside the server's default 30 s grace
  /// period. 0: no limit of that kind.
  int stream_max_tensors = 64;
  int64_t stream_max_bytes = int64_t{4} << 30;
  double stream_max_seconds = 10;
  int64_t max_message_bytes = 64ll << 20;  ///< largest response message accepted
  /// HTTP/2 receive window of each stream: results the transport buffers before the client
  /// reads them. Fixed (gRPC's bandwidth probing is off) so that the client's memory is bounded
  /// by streams x (window + two request chunks + one response message); 0 = gRPC's probing.
  int64_t receive_window_bytes = int64_t{4} << 20;
};

}  // namespace rtnq::client
