// The one place where a core absl::Status becomes a grpc::Status.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace rtnq::server {

/// Longest status message sent to a client; longer ones are cut and marked, so that a message
/// built from client input cannot grow a response without bound.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

/// `message` cut to at most kMaxStatusMessageBytes (ending in "... [truncated]" when cut), never
/// inside a UTF-8 character.
std::string TruncateStatusMessage(absl::string_view message);

/// Same canonical code (Abseil and gRPC share the numbering), message truncated.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace rtnq::server
