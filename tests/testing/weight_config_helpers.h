// Building resolvers in tests: a patch that sets only the bits, and a Create that must succeed.
#pragma once

#include <cstdlib>
#include <utility>
#include <vector>

#include "core/config/weight_config.h"
#include "gmock/gmock.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::testing {

/// A patch that overrides only `bits`.
inline QuantConfigPatch Bits(int bits) {
  QuantConfigPatch p;
  p.bits = bits;
  return p;
}

/// WeightConfigResolver::Create, failing the test (and stopping it) when it does not succeed.
inline WeightConfigResolver MustCreate(std::vector<WeightConfigEntry> entries,
                                       const QuantConfig& default_config,
                                       const ConfigLimits& limits = {}) {
  absl::StatusOr<WeightConfigResolver> r =
      WeightConfigResolver::Create(default_config, std::move(entries), limits);
  EXPECT_THAT(r, IsOk());
  if (!r.ok()) std::abort();
  return *std::move(r);
}

inline WeightConfigResolver MustCreate(std::vector<WeightConfigEntry> entries,
                                       const ConfigLimits& limits = {}) {
  return MustCreate(std::move(entries), QuantConfig{}, limits);
}

}  // namespace rtnq::testing
