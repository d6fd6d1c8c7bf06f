// A subcommand of the rtnq binary: its usage text, the flags it accepts and what it runs.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/cli/args.h"
#include "client/quantize_run.h"

namespace rtnq::client::cli {

/// Exit codes of every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  ///< the run failed (bad input, server error, bad check)
inline constexpr int kExitUsage = 2;   ///< the command line is wrong

struct Command {
  std::string name;
  std::string summary;          ///< one line for `rtnq help`
  std::string usage;            ///< synopsis and flag descriptions for `rtnq help NAME`
  std::set<std::string> flags;  ///< absl names it accepts
  int (*run)(const Command& self, const ParsedArgs& args) = nullptr;
};

/// All commands in the order `rtnq help` lists them.
const std::vector<Command>& Commands();

const Command& QuantizeCommand();
const Command& InfoCommand();
const Command& HealthCommand();
const Command& InspectCommand();
const Command& VerifyCommand();
const Command& SynthCommand();
const Command& PlanCommand();

/// quantize's output flags, which plan reads too.
inline const std::set<std::string> kOutputFlags = {
    "format",  "gptq_checkpoint_format", "compression_dim", "target", "include",
    "exclude", "expert_layout"};
/// quantize's output flags (--format, --gptq-checkpoint-format, --compression-dim, --target,
/// --include, --exclude, --expert-layout) into `options`; InvalidArgument (a usage error) for a
/// bad value. Plan reads them too.
absl::Status OutputFlagsToOptions(const ParsedArgs& args, QuantizeRunOptions& options);

/// Prints "rtnq: <message>" and the command's usage to stderr; returns kExitUsage.
int UsageError(const Command& command, const std::string& message);
/// Prints "rtnq: error: <message>" to stderr; returns kExitFailed.
int Fail(const absl::Status& status);

}  // namespace rtnq::client::cli
