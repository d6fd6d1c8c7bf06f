#include "server/status_mapping.h"

#include "absl/strings/str_cat.h"

namespace rtnq::server {

std::string TruncateStatusMessage(absl::string_view message) {
  if (message.size() <= kMaxStatusMessageBytes) return std::string(message);
  constexpr absl::string_view kMark = "... [truncated]";
  return absl::StrCat(message.substr(0, kMaxStatusMessageBytes - kMark.size()), kMark);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      TruncateStatusMessage(status.message()));
}

}  // namespace rtnq::server
