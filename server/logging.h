// Leveled logging through spdlog: one line per stream and per rejection, never per chunk.
// Lines are "key=value" pairs after a short event name, so they grep and parse easily.
#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace rtnq::server {

/// The layout of every line: an ISO 8601 time, the level, then the event's "key=value" pairs.
inline constexpr char kLogPattern[] = "%Y-%m-%dT%H:%M:%S.%e%z %l %v";

/// Sends the default spdlog logger to stderr at `level` ("trace", "debug", "info", "warn",
/// "error", "critical", "off"). InvalidArgument naming the value otherwise.
absl::Status ConfigureLogging(absl::string_view level);

/// Bytes of one peer-controlled log field kept by default (peers, reasons); status messages keep
/// kMaxStatusMessageBytes.
inline constexpr size_t kMaxLoggedBytes = 256;

/// A string a peer controls (tensor names, status messages built from them, peer addresses),
/// made safe for one log field by the core's EscapeForMessage: its first `max_bytes` bytes with
/// `"`, control characters and every byte >= 0x7f written as `\"` and `\xNN`, so that a value can
/// neither start a new line, nor end its quotes, nor send terminal escapes (ANSI, C1, bidi
/// controls), nor carry invalid UTF-8; a longer value ends in "... (N bytes)" with its full size.
/// The result is printable ASCII of at most 4 * max_bytes + 32 bytes.
std::string LogSafe(absl::string_view s, size_t max_bytes = kMaxLoggedBytes);

}  // namespace rtnq::server
