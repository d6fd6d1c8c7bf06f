// Bearer-token authentication: clients send `authorization: Bearer <token>` metadata.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rtnq::server {

/// Checks the authorization metadata of a call against one configured token.
class TokenAuth {
 public:
  /// Reads the token from a file (surrounding whitespace trimmed). InvalidArgument when the file
  /// cannot be read or holds no token.
  static absl::StatusOr<TokenAuth> FromFile(const std::string& path);
  explicit TokenAuth(std::string token) : token_(std::move(token)) {}

  /// OK when `authorization` is "Bearer <token>"; UNAUTHENTICATED otherwise (missing, another
  /// scheme, wrong token). The message never echoes what the client sent.
  absl::Status Check(std::optional<absl::string_view> authorization) const;

 private:
  std::string token_;
};

}  // namespace rtnq::server
