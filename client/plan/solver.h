// The exact choice behind `rtnq plan`: every item (a tensor, or a fused group of tensors that
// must share a config) takes exactly one of its options (candidates), each with a cost in bytes
// and an error; minimise the total error within a byte budget. This is the multiple-choice
// knapsack problem, solved exactly by a dynamic programme over Pareto frontiers of (bytes, error)
// states (Nemhauser-Ullmann), pruned by feasibility and by a Lagrangian lower bound against a
// greedy incumbent - pruning that never removes an optimal solution.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"

namespace rtnq::client {

/// One option of an item.
struct SolverOption {
  uint64_t bytes = 0;
  double error = 0;  ///< finite, >= 0
  int tag = 0;       ///< the caller's name for it (the candidate index)
};

/// An item: takes exactly one option. An item without options makes every budget infeasible.
struct SolverItem {
  std::vector<SolverOption> options;
};

/// The options of a group of tensors that must take the same candidate: candidate k is an option
/// (tagged k) when every member has it, with the members' bytes and errors summed in member
/// order. `members[m][k]` is member m's option for candidate k, or nullopt when k does not apply.
SolverItem GroupItem(const std::vector<std::vector<std::optional<SolverOption>>>& members);

/// The choice: `option[i]` indexes items[i].options.
struct SolverResult {
  std::vector<int> option;
  uint64_t bytes = 0;
  double error = 0;
  size_t states = 0;  ///< DP states kept over all levels (the work done)
};

struct SolverLimits {
  /// States kept over all levels; beyond it the search stops with ResourceExhausted naming the
  /// limit (memory is about 16 bytes per state).
  size_t max_states = 100'000'000;
};

/// Sum over items of their smallest option's bytes: no budget below it is feasible.
uint64_t MinimumBytes(const std::vector<SolverItem>& items);

/// Minimises the total error subject to total bytes <= budget, exactly. Ties in error go to
/// fewer bytes. InvalidArgument for an item without options or a non-finite or negative error;
/// OutOfRange "needs at least N bytes" when budget < MinimumBytes; ResourceExhausted when the
/// search exceeds limits.max_states.
absl::StatusOr<SolverResult> MinimizeError(const std::vector<SolverItem>& items, uint64_t budget,
                                           const SolverLimits& limits = {});

/// Each item's cheapest option (ties to the smaller error): the smallest total size, which is
/// what a per-tensor quality floor asks for once the options below it are removed.
SolverResult MinimizeBytes(const std::vector<SolverItem>& items);

}  // namespace rtnq::client
