// Which failures the remote client retries on a new stream (statuses come off the wire through
// proto/status_conversion.h).
#pragma once

#include "absl/status/status.h"

namespace rtnq::client {

/// True for codes worth retrying on a new stream: UNAVAILABLE, RESOURCE_EXHAUSTED,
/// DEADLINE_EXCEEDED, ABORTED.
bool IsTransient(const absl::Status& status);

}  // namespace rtnq::client
