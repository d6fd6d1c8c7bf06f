// The plan's solver against brute force on thousands of small random instances (shared byte
// costs, ties, unavailable candidates, fused groups), monotone in the budget, and its limits.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "client/plan/solver.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

struct Best {
  bool feasible = false;
  double error = 0;
  uint64_t bytes = 0;
};

// Every combination of options.
Best BruteForce(const std::vector<SolverItem>& items, uint64_t budget) {
  Best best;
  std::vector<size_t> at(items.size(), 0);
  for (const SolverItem& item : items) {
    if (item.options.empty()) return best;
  }
  while (true) {
    double error = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      error += items[i].options[at[i]].error;
      bytes += items[i].options[at[i]].bytes;
    }
    if (bytes <= budget &&
        (!best.feasible || error < best.error || (error == best.error && bytes < best.bytes))) {
      best = {true, error, bytes};
    }
    size_t i = 0;
    while (i < items.size() && ++at[i] == items[i].options.size()) at[i++] = 0;
    if (i == items.size()) return best;
  }
}

// Tensors with per-candidate (bytes, error), some candidates unavailable, grouped at random.
std::vector<SolverItem> RandomInstance(std::mt19937& rng, int max_tensors, int max_candidates) {
  const int tensors = std::uniform_int_distribution<int>(1, max_tensors)(rng);
  const int candidates = std::uniform_int_distribution<int>(1, max_candidates)(rng);
  // Few distinct sizes, as real checkpoints have (many tensors of one shape).
  std::uniform_int_distribution<int> size_class(1, 4), err(0, 20), group_len(1, 3);
  std::bernoulli_distribution available(0.85);
  std::vector<std::vector<std::optional<SolverOption>>> per_tensor(tensors);
  for (auto& t : per_tensor) {
    const uint64_t elements = 16u * size_class(rng);
    for (int k = 0; k < candidates; ++k) {
      if (!available(rng)) {
        t.push_back(std::nullopt);
        continue;
      }
      t.push_back(SolverOption{elements * static_cast<uint64_t>(k + 1), err(rng) * 0.25, k});
    }
  }
  std::vector<SolverItem> items;
  for (int i = 0; i < tensors;) {
    const int len = std::min(group_len(rng), tensors - i);
    items.push_back(GroupItem({per_tensor.begin() + i, per_tensor.begin() + i + len}));
    i += len;
  }
  return items;
}

TEST(PlanSolverTest, EqualsBruteForceOnRandomInstances) {
  std::mt19937 rng(20261);
  int feasible = 0, infeasible = 0;
  for (int trial = 0; trial < 10000; ++trial) {
    const std::vector<SolverItem> items = RandomInstance(rng, 7, 4);
    uint64_t max_bytes = 0;
    for (const SolverItem& item : items) {
      uint64_t m = 0;
      for (const SolverOption& o : item.options) m = std::max(m, o.bytes);
      max_bytes += m;
    }
    const uint64_t budget = std::uniform_int_distribution<uint64_t>(0, max_bytes + 20)(rng);
    const Best want = BruteForce(items, budget);
    absl::StatusOr<SolverResult> got = MinimizeError(items, budget);
    bool any_empty = false;
    for (const SolverItem& item : items) any_empty |= item.options.empty();
    if (any_empty) {
      EXPECT_THAT(got, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no options")));
      continue;
    }
    if (!want.feasible) {
      ++infeasible;
      EXPECT_THAT(got, StatusIs(absl::StatusCode::kOutOfRange,
                                HasSubstr(absl::StrCat("at least ", MinimumBytes(items)))));
      EXPECT_GT(MinimumBytes(items), budget);
      continue;
    }
    ++feasible;
    ASSERT_THAT(got, IsOk()) << "trial " << trial;
    EXPECT_LE(got->bytes, budget);
    EXPECT_NEAR(got->error, want.error, 1e-12 * (1 + want.error)) << "trial " << trial;
    if (got->error == want.error) {
      EXPECT_EQ(got->bytes, want.bytes) << "trial " << trial;
    }
    // The reported totals are those of the options chosen.
    double error = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      error += items[i].options[got->option[i]].error;
      bytes += items[i].options[got->option[i]].bytes;
    }
    EXPECT_EQ(error, got->error);
    EXPECT_EQ(bytes, got->bytes);
  }
  EXPECT_GT(feasible, 3000);
  EXPECT_GT(infeasible, 100);
}

TEST(PlanSolverTest, GroupItemSumsMembersAndDropsCandidatesOneMemberLacks) {
  const SolverItem g =
      GroupItem({{SolverOption{10, 1.0, 0}, std::nullopt, SolverOption{30, 0.5, 2}},
                 {SolverOption{5, 2.0, 0}, SolverOption{6, 1.0, 1}, SolverOption{7, 0.25, 2}}});
  ASSERT_EQ(g.options.size(), 2u);
  EXPECT_EQ(g.options[0].tag, 0);
  EXPECT_EQ(g.options[0].bytes, 15u);
  EXPECT_EQ(g.options[0].error, 3.0);
  EXPECT_EQ(g.options[1].tag, 2);
  EXPECT_EQ(g.options[1].bytes, 37u);
  EXPECT_EQ(g.options[1].error, 0.75);
  EXPECT_TRUE(GroupItem({}).options.empty());
}

TEST(PlanSolverTest, ErrorNeverIncreasesAsTheBudgetGrows) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<SolverItem> items;
    std::uniform_real_distribution<double> err(0, 1);
    for (int i = 0; i < 60; ++i) {
      SolverItem item;
      const uint64_t elements = 4096u << (i % 3);
      for (int k = 0; k < 5; ++k) {
        item.options.push_back({elements * (k + 2) / 2, err(rng) * std::pow(0.3, k), k});
      }
      items.push_back(item);
    }
    const uint64_t least = MinimumBytes(items);
    double previous = std::numeric_limits<double>::infinity();
    for (uint64_t budget = least; budget < least * 3; budget += least / 50) {
      absl::StatusOr<SolverResult> r = MinimizeError(items, budget);
      ASSERT_THAT(r, IsOk());
      EXPECT_LE(r->bytes, budget);
      EXPECT_LE(r->error, previous) << budget;
      previous = r->error;
    }
  }
}

TEST(PlanSolverTest, ModelSizedInstanceStaysSmall) {
  // 80 layers x 4 groups (qkv, o, gate_up, down) x 5 candidates, errors shaped like RTN's
  // (each extra bit ~ a quarter of the error), byte costs shared by every layer.
  std::mt19937 rng(3);
  std::lognormal_distribution<double> scale(0, 0.5);
  const uint64_t sizes[4] = {3u * 4096 * 4096, 4096u * 4096, 2u * 4096 * 11008, 4096u * 11008};
  const double bits[5] = {3.25, 4.125, 4.5, 5.125, 8.125};
  std::vector<SolverItem> items;
  for (int layer = 0; layer < 80; ++layer) {
    for (uint64_t n : sizes) {
      SolverItem item;
      const double s = scale(rng);
      for (int k = 0; k < 5; ++k) {
        item.options.push_back(
            {static_cast<uint64_t>(n * bits[k] / 8), s * n * std::pow(4.0, -bits[k]), k});
      }
      items.push_back(item);
    }
  }
  uint64_t total_elements = 0;
  for (uint64_t n : sizes) total_elements += 80 * n;
  const uint64_t budget = total_elements * 45 / 80;  // 4.5 bits per weight
  absl::StatusOr<SolverResult> r = MinimizeError(items, budget);
  ASSERT_THAT(r, IsOk());
  EXPECT_LE(r->bytes, budget);
  EXPECT_LT(r->states, 5'000'000u);
  ::testing::Test::RecordProperty("states", static_cast<int>(r->states));
}

TEST(PlanSolverTest, StateLimitBelowAtAndBeyond) {
  std::mt19937 rng(11);
  std::vector<SolverItem> items;
  std::uniform_real_distribution<double> err(0, 1);
  std::uniform_int_distribution<uint64_t> bytes(1, 1000);
  for (int i = 0; i < 25; ++i) {
    SolverItem item;
    for (int k = 0; k < 4; ++k) item.options.push_back({bytes(rng), err(rng), k});
    items.push_back(item);
  }
  const uint64_t budget = MinimumBytes(items) + 4000;
  absl::StatusOr<SolverResult> free = MinimizeError(items, budget);
  ASSERT_THAT(free, IsOk());
  ASSERT_GT(free->states, 50u);
  for (size_t limit : {free->states, free->states + 1}) {
    absl::StatusOr<SolverResult> r = MinimizeError(items, budget, {.max_states = limit});
    ASSERT_THAT(r, IsOk());
    EXPECT_EQ(r->option, free->option);
  }
  for (size_t limit : {free->states - 1, size_t{10}}) {
    EXPECT_THAT(MinimizeError(items, budget, {.max_states = limit}),
                StatusIs(absl::StatusCode::kResourceExhausted,
                         HasSubstr(absl::StrCat("more than ", limit, " states"))));
  }
}

TEST(PlanSolverTest, BadInputsAndEdges) {
  EXPECT_THAT(MinimizeError({SolverItem{{{1, -1.0, 0}}}}, 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("error -1")));
  EXPECT_THAT(MinimizeError({SolverItem{{{1, std::nan(""), 0}}}}, 10),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MinimizeError({SolverItem{}}, 10),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("item 0 has no options")));
  absl::StatusOr<SolverResult> none = MinimizeError({}, 0);
  ASSERT_THAT(none, IsOk());
  EXPECT_TRUE(none->option.empty());
  // Budget exactly at the minimum, one below, and unconstrained.
  const std::vector<SolverItem> items = {SolverItem{{{10, 1.0, 0}, {20, 0.5, 1}}},
                                         SolverItem{{{5, 2.0, 0}, {8, 0.0, 1}}}};
  EXPECT_THAT(MinimizeError(items, 14),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("needs at least 15 bytes")));
  EXPECT_THAT(MinimizeError(items, 15)->option, ::testing::ElementsAre(0, 0));
  EXPECT_THAT(MinimizeError(items, 18)->option, ::testing::ElementsAre(0, 1));
  EXPECT_THAT(MinimizeError(items, 1000)->option, ::testing::ElementsAre(1, 1));
  const SolverResult small = MinimizeBytes(items);
  EXPECT_THAT(small.option, ::testing::ElementsAre(0, 0));
  EXPECT_EQ(small.bytes, 15u);
  // Equal error: fewer bytes.
  EXPECT_THAT(MinimizeError({SolverItem{{{30, 1.0, 0}, {20, 1.0, 1}}}}, 100)->option,
              ::testing::ElementsAre(1));
}

}  // namespace
}  // namespace rtnq::client
