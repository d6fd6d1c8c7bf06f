// The parts of `rtnq plan` that `rtnq quantize --target-bpw ... --candidates ...` shares: the plan
// flags, and running a plan (measured locally or on --server) from them.
#pragma once

#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "client/cli/args.h"
#include "client/cli/command.h"
#include "client/plan/planner.h"
#include "client/quantize_run.h"

namespace rtnq::client::cli {

/// --candidates, --target-bpw, --target-size, --min-snr, --imatrix, --sensitivity, --objective.
inline const std::set<std::string> kPlanFlags = {
    "candidates", "target_bpw", "target_size", "min_snr", "imatrix", "sensitivity", "objective"};

/// A plan budget (--target-bpw, --target-size or --min-snr) was given.
bool WantsPlan(const ParsedArgs& args);

/// Fills request.candidates, the budgets and the objective from the flags. InvalidArgument (a
/// usage error) for a bad candidate (naming it), no candidates, no budget, a bad size or
/// objective, or --imatrix together with --sensitivity.
absl::Status PlanRequestFromFlags(const ParsedArgs& args, PlanRequest& request);

/// Reads the importance file, measures (locally, or on --server with --streams sessions) and
/// solves; one progress line per tensor on stderr unless `quiet`.
absl::StatusOr<PlanOutcome> RunPlanFromFlags(const ParsedArgs& args, const PlanRequest& request,
                                             bool quiet);

/// quantize's steps before its run: with a plan budget, plans and replaces options' config
/// (and selection) with the plan's; with --dry-run, prints the run's whole plan. Returns the
/// exit code when the command is done (a dry run, an error), nullopt to go on quantizing.
std::optional<int> PlanBeforeQuantize(const Command& self, const ParsedArgs& args,
                                      QuantizeRunOptions& options);

}  // namespace rtnq::client::cli
