#include "client/cli/args.h"

#include <algorithm>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace rtnq::client::cli {
namespace {

// absl flag names cannot hold '-', users type them: --group-size -> group_size.
std::string AbslFlagName(std::string_view typed) {
  if (typed == "o") return "output";
  return absl::StrReplaceAll(std::string(typed), {{"-", "_"}});
}

// True when `name` is one of the rtnq cli flags (not one absl or a library defines).
bool IsCliFlag(const absl::CommandLineFlag* flag) {
  return flag != nullptr && absl::StrContains(flag->Filename(), "client/cli/");
}

}  // namespace

std::string UserFlagName(std::string_view absl_name) {
  return absl::StrReplaceAll(std::string(absl_name), {{"_", "-"}});
}

absl::StatusOr<ParsedArgs> ParseArgs(std::string_view command, const std::vector<std::string>& args,
                                     const std::set<std::string>& allowed) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      parsed.positional.insert(parsed.positional.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      parsed.positional.push_back(arg);
      continue;
    }
    const std::string_view body = std::string_view(arg).substr(arg[1] == '-' ? 2 : 1);
    const size_t eq = body.find('=');
    const std::string_view typed = body.substr(0, eq);
    std::string name = AbslFlagName(typed);
    std::string value;
    bool has_value = eq != std::string_view::npos;
    if (has_value) value = std::string(body.substr(eq + 1));

    absl::CommandLineFlag* flag = allowed.count(name) ? absl::FindCommandLineFlag(name) : nullptr;
    // --no-full-range / --nofull_range: a boolean set to false.
    if (flag == nullptr && !has_value && absl::StartsWith(name, "no")) {
      std::string positive = name.substr(absl::StartsWith(name, "no_") ? 3 : 2);
      absl::CommandLineFlag* f =
          allowed.count(positive) ? absl::FindCommandLineFlag(positive) : nullptr;
      if (f != nullptr && f->IsOfType<bool>()) {
        flag = f;
        name = positive;
        value = "false";
        has_value = true;
      }
    }
    if (flag == nullptr) {
      if (IsCliFlag(absl::FindCommandLineFlag(name))) {
        return absl::InvalidArgumentError(absl::StrCat(
            "flag --", UserFlagName(name), " does not apply to `rtnq ", std::string(command), "`"));
      }
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", std::string(typed)));
    }
    if (!has_value) {
      if (flag->IsOfType<bool>()) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];  // may start with '-' (--group-size -1)
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", UserFlagName(name), " needs a value"));
      }
    }
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad value \"", value, "\" for --", UserFlagName(name), ": ", error));
    }
    parsed.values[name].push_back(value);
  }
  return parsed;
}

}  // namespace rtnq::client::cli
