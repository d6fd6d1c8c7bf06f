// The rtnq command line syntax: hyphenated flags, -o, --no-FLAG, values that look like flags,
// repeatable flags and the usage errors for unknown flags and flags of other commands.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/flags/flag.h"
#include "client/cli/args.h"
#include "client/cli/flags.h"
#include "tests/testing/status_matchers.h"

namespace rtnq::client::cli {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::set<std::string> kQuantizeLike = FlagSet({kSpecFlags, kEngineFlags, {"output", "json"}});

TEST(ParseArgsTest, HyphenatedAndAbslSpellingsSetTheSameFlags) {
  absl::StatusOr<ParsedArgs> a = ParseArgs(
      "quantize", {"in.safetensors", "--group-size=64", "-o", "out", "--double-quant-bits", "6"},
      kQuantizeLike);
  ASSERT_THAT(a, IsOk());
  EXPECT_THAT(a->positional, ElementsAre("in.safetensors"));
  EXPECT_EQ(absl::GetFlag(FLAGS_output), "out");
  ConfigFlags c = ConfigFlagsFromArgs(*a);
  EXPECT_EQ(c.group_size, 64);
  EXPECT_EQ(c.double_quant_bits, 6);
  EXPECT_FALSE(c.bits.has_value());  // not given: left to the config file and defaults

  a = ParseArgs("quantize", {"--group_size", "128"}, kQuantizeLike);
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(ConfigFlagsFromArgs(*a).group_size, 128);
}

TEST(ParseArgsTest, ValuesMayLookLikeFlags) {
  absl::StatusOr<ParsedArgs> a = ParseArgs("quantize", {"--group-size", "-1", "x"}, kQuantizeLike);
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ(ConfigFlagsFromArgs(*a).group_size, -1);
  EXPECT_THAT(a->positional, ElementsAre("x"));
}

TEST(ParseArgsTest, BooleansAndTheirNegations) {
  absl::StatusOr<ParsedArgs> a =
      ParseArgs("quantize", {"--mse-search", "--no-full-range", "--json"}, kQuantizeLike);
  ASSERT_THAT(a, IsOk());
  ConfigFlags c = ConfigFlagsFromArgs(*a);
  EXPECT_EQ(c.mse_search, true);
  EXPECT_EQ(c.full_range, false);
  a = ParseArgs("quantize", {"--nomse_search", "--full-range=true"}, kQuantizeLike);
  ASSERT_THAT(a, IsOk());
  c = ConfigFlagsFromArgs(*a);
  EXPECT_EQ(c.mse_search, false);
  EXPECT_EQ(c.full_range, true);
}

TEST(ParseArgsTest, RepeatedFlagsKeepEveryValue) {
  absl::StatusOr<ParsedArgs> a =
      ParseArgs("quantize", {"--preset", "BNB_NF4", "--preset=GGML_TYPE_Q4_K"}, kQuantizeLike);
  ASSERT_THAT(a, IsOk());
  EXPECT_THAT(a->values.at("preset"), ElementsAre("BNB_NF4", "GGML_TYPE_Q4_K"));
  EXPECT_EQ(ConfigFlagsFromArgs(*a).preset, "GGML_TYPE_Q4_K");
}

TEST(ParseArgsTest, DoubleDashEndsTheFlags) {
  absl::StatusOr<ParsedArgs> a = ParseArgs("quantize", {"--", "--json", "-o"}, kQuantizeLike);
  ASSERT_THAT(a, IsOk());
  EXPECT_THAT(a->positional, ElementsAre("--json", "-o"));
}

TEST(ParseArgsTest, UsageErrorsNameTheFlag) {
  EXPECT_THAT(ParseArgs("quantize", {"--frobnicate"}, kQuantizeLike),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag --frobnicate")));
  EXPECT_THAT(ParseArgs("synth", {"--bits", "4"}, kEngineFlags),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("flag --bits does not apply to `rtnq synth`")));
  EXPECT_THAT(
      ParseArgs("quantize", {"--group-size"}, kQuantizeLike),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("flag --group-size needs a value")));
  EXPECT_THAT(ParseArgs("quantize", {"--bits=four"}, kQuantizeLike),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("\"four\" for --bits")));
  // A flag some library defines is not one of rtnq's.
  EXPECT_THAT(ParseArgs("quantize", {"--flagfile=x"}, kQuantizeLike),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag --flagfile")));
}

TEST(CheckModeFlagsTest, LocalAndRemoteFlagsNeedTheirMode) {
  absl::StatusOr<ParsedArgs> a = ParseArgs("quantize", {"--threads", "2", "--server", "h:1"},
                                           FlagSet({kEngineFlags, kRemoteFlags}));
  ASSERT_THAT(a, IsOk());
  EXPECT_THAT(CheckModeFlags(*a), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("--threads applies to local mode only")));
  a = ParseArgs("quantize", {"--token-file", "t"}, FlagSet({kEngineFlags, kRemoteFlags}));
  ASSERT_THAT(a, IsOk());
  EXPECT_THAT(CheckModeFlags(*a), StatusIs(absl::StatusCode::kInvalidArgument,
                                           HasSubstr("--token-file needs --server")));
}

}  // namespace
}  // namespace rtnq::client::cli
