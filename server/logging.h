// Leveled logging through spdlog: one line per stream and per rejection, never per chunk.
// Lines are "key=value" pairs after a short event name, so they grep and parse easily.
#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rtnq::server {

/// Sends the default spdlog logger to stderr at `level` ("trace", "debug", "info", "warn",
/// "error", "critical", "off"). InvalidArgument naming the value otherwise.
absl::Status ConfigureLogging(absl::string_view level);

}  // namespace rtnq::server
