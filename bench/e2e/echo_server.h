// The raw transport baseline's server: the Echo service of echo.proto, no work behind it.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace rtnq::bench {

/// Serves Echo on `listen` (port 0: any free port), writes the bound port to `port_file`, and
/// returns after SIGTERM or SIGINT. Messages up to `max_message_bytes` are accepted, as in
/// rtnq-server; each chunk is answered with 1/`divisor` of its bytes. Must be called before any
/// other thread exists (it blocks both signals).
absl::Status ServeEcho(const std::string& listen, const std::string& port_file,
                       int64_t max_message_bytes, int divisor);

}  // namespace rtnq::bench
