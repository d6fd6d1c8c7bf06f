// The one place where gRPC statuses become absl statuses (the codes are numerically equal).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace rtnq::client {

/// Converts a gRPC status, keeping its code and message.
absl::Status FromGrpcStatus(const grpc::Status& status);

/// Builds a status from a wire code number (TensorError.code) and message.
absl::Status StatusFromCode(int code, const std::string& message);

/// True for codes worth retrying on a new stream: UNAVAILABLE, RESOURCE_EXHAUSTED,
/// DEADLINE_EXCEEDED, ABORTED.
bool IsTransient(const absl::Status& status);

}  // namespace rtnq::client
