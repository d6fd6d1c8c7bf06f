#include "server/logging.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "core/config/input_limits.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace rtnq::server {

absl::Status ConfigureLogging(absl::string_view level) {
  const std::string name(level);
  const spdlog::level::level_enum parsed = spdlog::level::from_str(name);
  // from_str answers "off" for anything it does not know; only accept "off" when asked for.
  if (parsed == spdlog::level::off && name != "off") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--log_level \"", name, "\" is not one of trace, debug, info, warn, error, critical, off"));
  }
  auto logger = spdlog::get("rtnq");
  if (!logger) logger = spdlog::stderr_logger_mt("rtnq");
  logger->set_pattern(kLogPattern);
  logger->set_level(parsed);
  spdlog::set_default_logger(logger);
  return absl::OkStatus();
}

std::string LogSafe(absl::string_view s, size_t max_bytes) {
  // The core's rule for quoting peer strings in error messages, so that a name reads the same in
  // a status message and in a log line.
  return EscapeForMessage(std::string_view(s.data(), s.size()), max_bytes);
}

}  // namespace rtnq::server
