// The one place where statuses cross the wire: a core absl::Status becomes a grpc::Status (the
// server's replies) and back (the client's view of them). Abseil and gRPC share the canonical
// code numbering, so the code is kept as is.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "grpcpp/support/status.h"

namespace rtnq {

/// Longest status message sent to a client; longer ones are cut and marked, so that a message
/// built from client input cannot grow a response without bound.
inline constexpr size_t kMaxStatusMessageBytes = 1024;

/// `message` cut to at most kMaxStatusMessageBytes (ending in "... [truncated]" when cut), never
/// inside a UTF-8 character.
std::string TruncateStatusMessage(absl::string_view message);

/// Same canonical code, message truncated.
grpc::Status ToGrpcStatus(const absl::Status& status);

/// Converts a gRPC status, keeping its code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

/// Builds a status from a wire code number (TensorError.code) and message; Unknown for numbers
/// outside the canonical codes.
absl::Status StatusFromCode(int code, const std::string& message);

}  // namespace rtnq
