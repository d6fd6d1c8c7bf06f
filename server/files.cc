#include "server/files.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace rtnq::server {

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": cannot open \"", path, "\": ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  std::string s = out.str();
  if (s.size() > (size_t{1} << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": \"", path, "\" is larger than 1 MiB (", s.size(), " bytes)"));
  }
  return s;
}

}  // namespace rtnq::server
