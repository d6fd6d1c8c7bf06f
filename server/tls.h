// Transport credentials of the listening port: plaintext, TLS, or mutual TLS.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"
#include "server/server_options.h"

namespace rtnq::server {

/// Insecure credentials when no certificate is configured; TLS with the PEM chain and key
/// otherwise, and when tls_client_ca_file is set, clients must present a certificate signed by
/// that CA (mTLS). InvalidArgument naming the flag for unreadable files or a cert without a key.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerOptions& options);

}  // namespace rtnq::server
