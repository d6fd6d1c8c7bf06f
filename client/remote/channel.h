// Builds the gRPC channel of a ClientOptions: target parsing (single address, comma list, dns:///)
// with round_robin over every replica, TLS or insecure credentials, and the bearer token.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "client/remote/client_options.h"
#include "grpcpp/grpcpp.h"

namespace rtnq::client {

/// Turns ClientOptions::server into a gRPC target: "host:port" and "dns:///name:port" pass
/// through; a comma list is resolved (getaddrinfo) into "ipv4:a:p,b:q" or "ipv6:[a]:p,...".
/// Errors name the bad entry.
absl::StatusOr<std::string> ResolveTarget(const std::string& server);

/// Reads the bearer token from options.token_file ("" when none); errors name the file.
absl::StatusOr<std::string> ReadToken(const ClientOptions& options);

/// A channel to options.server with round_robin load balancing and the configured credentials.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeChannel(const ClientOptions& options);

/// Adds the per-call metadata (the bearer token) to `context`; `token` may be empty.
void SetupCall(grpc::ClientContext& context, const std::string& token);

}  // namespace rtnq::client
