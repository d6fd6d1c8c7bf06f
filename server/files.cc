#include "server/files.h"

#include "absl/strings/str_cat.h"
#include "core/io/file_io.h"

namespace rtnq::server {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, absl::string_view what) {
  absl::StatusOr<std::string> text = ReadFileToString(path, size_t{1} << 20);
  if (text.ok()) return text;
  // A bad flag value: InvalidArgument whatever the errno, naming the flag.
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": ", text.status().code() == absl::StatusCode::kInvalidArgument ? "" : "cannot ",
      text.status().message()));
}

}  // namespace rtnq::server
