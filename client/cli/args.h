// The rtnq command line as users type it: `rtnq COMMAND [ARGS] [--flag[=value]]...` with
// hyphenated flag names (--group-size), `-o` for --output and `--no-FLAG` for booleans. Values are
// parsed into the absl flags the cli files define (flags.h); which flags a command accepts is the
// command's own list, so a flag of another command is a usage error rather than ignored.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rtnq::client::cli {

/// One command line after parsing; the flag values themselves are in the absl flags.
struct ParsedArgs {
  std::vector<std::string> positional;
  /// Every value given for each flag (absl name), in order: repeatable flags (--include) read
  /// them all, the others hold the last one.
  std::map<std::string, std::vector<std::string>> values;
  bool Has(std::string_view flag) const { return values.count(std::string(flag)) != 0; }
};

/// "group-size" for the absl flag "group_size": the name users type.
std::string UserFlagName(std::string_view absl_name);

/// Parses `args` (everything after the command) for `command`, accepting only the absl flags in
/// `allowed`. Flag values are stored into the absl flags (ParseFrom). InvalidArgument (a usage
/// error) for an unknown flag, a flag of another command, a missing or malformed value; "--"
/// ends the flags.
absl::StatusOr<ParsedArgs> ParseArgs(std::string_view command, const std::vector<std::string>& args,
                                     const std::set<std::string>& allowed);

}  // namespace rtnq::client::cli
