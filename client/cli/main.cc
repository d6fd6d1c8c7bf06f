// rtnq: quantize checkpoints locally or on rtnq servers, and the tools around it (info, health,
// inspect, verify, synth). Each command is one file in client/cli/; this one dispatches.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "client/cli/version.h"

namespace {

using rtnq::client::cli::Command;
using rtnq::client::cli::Commands;

const Command* FindCommand(const std::string& name) {
  for (const Command& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

void PrintOverview(std::ostream& out) {
  out << "rtnq " << rtnq::client::cli::kVersion
      << ": round-to-nearest weight quantization of safetensors checkpoints\n\n"
         "usage: rtnq COMMAND [ARGS] [FLAGS]\n\ncommands:\n";
  for (const Command& c : Commands()) out << absl::StrFormat("  %-9s %s\n", c.name, c.summary);
  out << "\n`rtnq help COMMAND` or `rtnq COMMAND --help` shows a command's flags. Flags are\n"
         "hyphenated (--group-size 32 or --group-size=32), booleans take --no-FLAG, -o is "
         "--output.\nexit status: 0 success, 1 failure, 2 bad usage\n";
}

bool IsHelp(const std::string& arg) { return arg == "--help" || arg == "-h" || arg == "help"; }

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << "rtnq: missing command\n\n";
    PrintOverview(std::cerr);
    return rtnq::client::cli::kExitUsage;
  }
  if (args[0] == "--version" || args[0] == "version") {
    std::cout << "rtnq " << rtnq::client::cli::kVersion << "\n";
    return rtnq::client::cli::kExitOk;
  }
  if (IsHelp(args[0])) {
    if (args.size() > 1) {
      if (const Command* c = FindCommand(args[1])) {
        std::cout << "usage: " << c->usage << "\n";
        return rtnq::client::cli::kExitOk;
      }
    }
    PrintOverview(std::cout);
    return rtnq::client::cli::kExitOk;
  }
  const Command* command = FindCommand(args[0]);
  if (command == nullptr) {
    std::cerr << "rtnq: unknown command \"" << args[0] << "\"\n\n";
    PrintOverview(std::cerr);
    return rtnq::client::cli::kExitUsage;
  }
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  for (const std::string& a : rest) {
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      std::cout << "usage: " << command->usage << "\n";
      return rtnq::client::cli::kExitOk;
    }
  }
  absl::StatusOr<rtnq::client::cli::ParsedArgs> parsed =
      rtnq::client::cli::ParseArgs(command->name, rest, command->flags);
  if (!parsed.ok())
    return rtnq::client::cli::UsageError(*command, std::string(parsed.status().message()));
  return command->run(*command, *parsed);
}
