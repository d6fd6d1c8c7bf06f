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
  int64_t chunk_bytes = 1 << 20;           ///< TensorChunk size
  int64_t max_message_bytes = 64ll << 20;  ///< largest response message accepted
};

}  // namespace rtnq::client
