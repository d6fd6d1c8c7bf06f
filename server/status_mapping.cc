#include "server/status_mapping.h"

#include "absl/strings/str_cat.h"

namespace rtnq::server {

std::string TruncateStatusMessage(absl::string_view message) {
  if (message.size() <= kMaxStatusMessageBytes) return std::string(message);
  constexpr absl::string_view kMark = "... [truncated]";
  // Cut before a UTF-8 continuation byte would split a character: messages go into proto3 string
  // fields (TensorError.message), which a client refuses to parse when they are not valid UTF-8.
  size_t cut = kMaxStatusMessageBytes - kMark.size();
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(message.substr(0, cut), kMark);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      TruncateStatusMessage(status.message()));
}

}  // namespace rtnq::server
