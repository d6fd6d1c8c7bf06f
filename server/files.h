// Reading the small files the server is configured with (token, certificates).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rtnq::server {

/// The whole file, at most 1 MiB. Errors name `what` (e.g. "--tls_cert_file") and the path.
absl::StatusOr<std::string> ReadSmallFile(const std::string& path, absl::string_view what);

}  // namespace rtnq::server
