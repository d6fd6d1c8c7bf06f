// Session configs and tensor names a hostile client sends (issue 13): the exact inputs of the
// issue, and every config limit just below, at and well beyond its value. Errors must be
// InvalidArgument naming the limit; work must stay bounded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/input_limits.h"
#include "core/config/weight_config.h"
#include "tests/testing/scaling.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/weight_config_helpers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::Bits;
using ::rtnq::testing::IsOk;
using ::rtnq::testing::MustCreate;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

absl::StatusOr<WeightConfigResolver> Create(std::vector<WeightConfigEntry> entries,
                                            const ConfigLimits& limits = {}) {
  return WeightConfigResolver::Create(QuantConfig{}, std::move(entries), limits);
}

// `n` exact entries named like a real checkpoint's layers, optionally with patterns first.
std::vector<WeightConfigEntry> LayerEntries(size_t n) {
  std::vector<WeightConfigEntry> e;
  e.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    e.push_back({absl::StrCat("model.layers.", i, ".mlp.down_proj"), Bits(8)});
  }
  return e;
}

// A config_json of `n` weight_config entries, ~22 bytes each.
std::string ConfigWithEntries(size_t n) {
  std::string s = R"({"bits": 4, "weight_config": {)";
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppend(&s, i ? "," : "", "\"model.layers.", i, ".mlp\":{\"bits\":8}");
  }
  return s + "}}";
}

std::string KeyOfLength(size_t n, char fill = 'k') { return std::string(n, fill); }

// ---------------------------------------------------------------------------------------------
// The issue's examples.

// A weight_config key `re:.*` and a 40,000-character tensor name crashed the server
// (std::regex recursion overflowed the gRPC thread's stack).
TEST(HostileConfigTest, DotStarAndFortyThousandCharacterName) {
  const WeightConfigResolver r = MustCreate({{"re:.*", Bits(8)}});
  const std::string name(40'000, 'x');
  EXPECT_THAT(r.Resolve(name),
              StatusIs(kInvalid, AllOf(StartsWith("tensor \"xxxx"), HasSubstr("(40000 bytes)"),
                                       HasSubstr("name length 40000 is over the limit of 4096 "
                                                 "(max tensor name bytes)"))));
  // With the limit lifted, the match itself is linear and does not recurse.
  ConfigLimits big;
  big.max_name_bytes = 1 << 20;
  absl::StatusOr<ResolvedConfig> rc = MustCreate({{"re:.*", Bits(8)}}, big).Resolve(name);
  ASSERT_THAT(rc, IsOk());
  EXPECT_EQ(rc->decided_by, "re:.*");
}

// The README's example key with a 100 KB name starting `model.layers.0.`.
TEST(HostileConfigTest, ReadmeRegexAndHundredKilobyteName) {
  const std::string key = "re:model\\.layers\\.(0|1)\\..*";
  const std::string name = "model.layers.0." + std::string(100'000, 'a');
  EXPECT_THAT(MustCreate({{key, Bits(8)}}).Resolve(name),
              StatusIs(kInvalid, HasSubstr("name length 100015 is over the limit of 4096")));
  ConfigLimits big;
  big.max_name_bytes = 1 << 20;
  absl::StatusOr<ResolvedConfig> rc = MustCreate({{key, Bits(8)}}, big).Resolve(name);
  ASSERT_THAT(rc, IsOk());
  EXPECT_EQ(rc->match_kind, "pattern");
}

// A key of `re:` + 50,000 nested groups: over the key length limit, and with that lifted, over
// the nesting limit.
TEST(HostileConfigTest, FiftyThousandNestedGroups) {
  const std::string key = "re:" + std::string(50'000, '(') + "a" + std::string(50'000, ')');
  EXPECT_THAT(Create({{key, Bits(8)}}),
              StatusIs(kInvalid, AllOf(StartsWith("weight_config[\"re:(((("),
                                       HasSubstr("key length 100004 is over the limit of 4096 "
                                                 "(max weight_config key bytes)"))));
  ConfigLimits big;
  big.max_key_bytes = 1 << 20;
  big.max_pattern_size = 1 << 20;
  EXPECT_THAT(Create({{key, Bits(8)}}, big),
              StatusIs(kInvalid, HasSubstr("groups nested 50000 deep, over the limit of 64")));
}

// config_json of 200,000 nested `[` (the error path recursed in the JSON library's dump()).
TEST(HostileConfigTest, TwoHundredThousandNestedBrackets) {
  EXPECT_THAT(ParseSessionConfigJson(std::string(200'000, '[')),
              StatusIs(kInvalid, StartsWith("config: JSON nested deeper than the limit of 64")));
  const std::string inside = R"({"weight_config": {"lm_head": {"bits": )" +
                             std::string(200'000, '[') + "4" + std::string(200'000, ']') + "}}}";
  EXPECT_THAT(ParseSessionConfigJson(inside),
              StatusIs(kInvalid, HasSubstr("at \"weight_config\".\"lm_head\".\"bits\"[0][0]")));
}

// Within the depth limit, a wrongly typed deep value is quoted briefly (no recursive dump).
TEST(HostileConfigTest, DeepValueInAnErrorIsQuotedBriefly) {
  const std::string text = R"({"bits": )" + std::string(60, '[') + std::string(60, ']') + "}";
  absl::StatusOr<WeightConfigResolver> r = ParseSessionConfigJson(text);
  EXPECT_THAT(r, StatusIs(kInvalid, StartsWith("config: bits must be an integer, got [[[[")));
  EXPECT_LT(r.status().message().size(), 200u);
}

// `re:(a+)+$` against "a"*28 + "!" took ~10 s while holding the stream's lock.
TEST(HostileConfigTest, ReDosPatternResolvesInLinearTime) {
  const WeightConfigResolver r = MustCreate({{"re:(a+)+$", Bits(2)}});
  for (const size_t n : {size_t{28}, kMaxTensorNameBytes - 1}) {
    absl::StatusOr<ResolvedConfig> rc = r.Resolve(std::string(n, 'a') + "!");
    ASSERT_THAT(rc, IsOk());
    EXPECT_EQ(rc->match_kind, "default");
  }
  EXPECT_EQ(r.Resolve(std::string(kMaxTensorNameBytes, 'a'))->decided_by, "re:(a+)+$");
}

// A weight_config of 40,000 entries (0.9 MB) took 2-3 s, x10 for 4x input.
TEST(HostileConfigTest, FortyThousandEntriesParseAndResolveLinearly) {
  const std::string text = ConfigWithEntries(40'000);
  absl::StatusOr<WeightConfigResolver> r = ParseSessionConfigJson(text);
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->entries().size(), 40'000u);
  EXPECT_EQ(r->Resolve("model.layers.39999.mlp.weight")->match_kind, "layer");
  EXPECT_EQ(r->Resolve("model.layers.40000.mlp.weight")->match_kind, "default");

  ConfigLimits big;
  big.max_entries = 1'000'000;
  const std::string small = ConfigWithEntries(10'000), large = ConfigWithEntries(80'000);
  ::rtnq::testing::ExpectSubquadratic(
      [&] { ASSERT_THAT(ParseSessionConfigJson(small, big), IsOk()); },
      [&] { ASSERT_THAT(ParseSessionConfigJson(large, big), IsOk()); }, 8);
}

// ---------------------------------------------------------------------------------------------
// Each limit just below, at and well beyond its value.

TEST(ConfigLimitsTest, TensorNameLength) {
  const WeightConfigResolver r = MustCreate({{"*", Bits(8)}});
  EXPECT_EQ(r.Resolve(KeyOfLength(kMaxTensorNameBytes - 1))->decided_by, "*");
  EXPECT_EQ(r.Resolve(KeyOfLength(kMaxTensorNameBytes))->decided_by, "*");
  for (const size_t n : {kMaxTensorNameBytes + 1, size_t{1} << 20}) {
    EXPECT_THAT(r.Resolve(KeyOfLength(n)),
                StatusIs(kInvalid,
                         HasSubstr(absl::StrCat("name length ", n, " is over the limit of 4096"))));
  }
}

TEST(ConfigLimitsTest, KeyLength) {
  for (const char fill : {'k', '*'}) {  // exact names and patterns
    SCOPED_TRACE(fill);
    EXPECT_THAT(Create({{KeyOfLength(kMaxWeightConfigKeyBytes - 1, fill), Bits(8)}}), IsOk());
    EXPECT_THAT(Create({{KeyOfLength(kMaxWeightConfigKeyBytes, fill), Bits(8)}}), IsOk());
    for (const size_t n : {kMaxWeightConfigKeyBytes + 1, size_t{1} << 20}) {
      EXPECT_THAT(
          Create({{KeyOfLength(n, fill), Bits(8)}}),
          StatusIs(kInvalid, AllOf(StartsWith("weight_config[\""),
                                   HasSubstr(absl::StrCat("(", n, " bytes)]: key length ", n,
                                                          " is over the limit of 4096 "
                                                          "(max weight_config key "
                                                          "bytes)")))));
    }
  }
  // A name at the key limit resolves exactly.
  const std::string name = KeyOfLength(kMaxWeightConfigKeyBytes);
  EXPECT_EQ(MustCreate({{name, Bits(8)}}).Resolve(name)->match_kind, "tensor");
}

TEST(ConfigLimitsTest, EntryCount) {
  ConfigLimits small;
  small.max_entries = 100;
  EXPECT_THAT(Create(LayerEntries(99), small), IsOk());
  EXPECT_THAT(Create(LayerEntries(100), small), IsOk());
  for (const size_t n : {size_t{101}, size_t{10'000}}) {
    EXPECT_THAT(Create(LayerEntries(n), small),
                StatusIs(kInvalid, absl::StrCat("config: weight_config entry count ", n,
                                                " is over the limit of 100 (max weight_config "
                                                "entries)")));
    EXPECT_THAT(ParseSessionConfigJson(ConfigWithEntries(n), small),
                StatusIs(kInvalid, HasSubstr("over the limit of 100 (max weight_config entries)")));
  }
  EXPECT_THAT(ParseSessionConfigJson(ConfigWithEntries(100), small), IsOk());
  // The real limit, at and beyond.
  EXPECT_THAT(Create(LayerEntries(kMaxWeightConfigEntries)), IsOk());
  EXPECT_THAT(Create(LayerEntries(kMaxWeightConfigEntries + 1)),
              StatusIs(kInvalid, HasSubstr("entry count 100001 is over the limit of 100000")));
}

TEST(ConfigLimitsTest, ConfigBytes) {
  const std::string text = ConfigWithEntries(50);
  ConfigLimits limits;
  limits.max_config_bytes = text.size() + 1;
  EXPECT_THAT(ParseSessionConfigJson(text, limits), IsOk());
  limits.max_config_bytes = text.size();
  EXPECT_THAT(ParseSessionConfigJson(text, limits), IsOk());
  EXPECT_THAT(ParseSessionConfigJson(text + " ", limits),
              StatusIs(kInvalid,
                       absl::StrCat("config: config_json size ", text.size() + 1,
                                    " is over the limit of ", text.size(), " (max config bytes)")));
  EXPECT_THAT(ParseSessionConfigJson(text + std::string(1 << 20, ' '), limits),
              StatusIs(kInvalid, HasSubstr("(max config bytes)")));
  // Entries given as fields (the proto path) count their key bytes against the same limit.
  limits.max_config_bytes = 10;
  EXPECT_THAT(Create({{"aaaaa", Bits(8)}, {"bbbbb", Bits(8)}}, limits), IsOk());
  EXPECT_THAT(Create({{"aaaaa", Bits(8)}, {"bbbbbb", Bits(8)}}, limits),
              StatusIs(kInvalid, HasSubstr("total bytes of weight_config keys 11 is over the limit "
                                           "of 10 (max config bytes)")));
}

TEST(ConfigLimitsTest, DefaultConfigBytesLimitIsSixteenMebibytes) {
  const std::string padding(kMaxConfigBytes - 2, ' ');
  EXPECT_THAT(ParseSessionConfigJson("{" + padding + "}"), IsOk());
  EXPECT_THAT(ParseSessionConfigJson("{" + padding + " }"),
              StatusIs(kInvalid, HasSubstr("over the limit of 16777216 (max config bytes)")));
}

TEST(ConfigLimitsTest, JsonDepth) {
  // Depth 3 is what a config needs: top level, weight_config, an entry.
  ConfigLimits limits;
  limits.max_json_depth = 3;
  const std::string ok = R"({"weight_config": {"lm_head": {"bits": 8}}})";
  EXPECT_THAT(ParseSessionConfigJson(ok, limits), IsOk());
  limits.max_json_depth = 2;
  EXPECT_THAT(ParseSessionConfigJson(ok, limits),
              StatusIs(kInvalid,
                       "config: JSON nested deeper than the limit of 2 levels at "
                       "\"weight_config\".\"lm_head\""));
  // The default limit: 64 levels parse (and fail on types), 65 do not.
  auto deep = [](int levels) {
    return R"({"bits": )" + std::string(static_cast<size_t>(levels - 1), '[') +
           std::string(static_cast<size_t>(levels - 1), ']') + "}";
  };
  EXPECT_THAT(ParseSessionConfigJson(deep(63)),
              StatusIs(kInvalid, HasSubstr("must be an integer")));
  EXPECT_THAT(ParseSessionConfigJson(deep(64)),
              StatusIs(kInvalid, HasSubstr("must be an integer")));
  EXPECT_THAT(ParseSessionConfigJson(deep(65)), StatusIs(kInvalid, HasSubstr("nested deeper")));
}

std::vector<WeightConfigEntry> Globs(size_t count, size_t bytes_each) {
  std::vector<WeightConfigEntry> e;
  for (size_t i = 0; i < count; ++i) {
    std::string key = absl::StrCat("*.", i, ".");
    key.resize(bytes_each, 'x');
    e.push_back({key, Bits(8)});
  }
  return e;
}

TEST(ConfigLimitsTest, PatternSize) {
  // A glob's size is its length: 4 globs of 1,024 bytes are exactly the limit.
  EXPECT_THAT(Create(Globs(4, 1023)), IsOk());
  EXPECT_THAT(Create(Globs(4, 1024)), IsOk());
  std::vector<WeightConfigEntry> over = Globs(4, 1024);
  over.push_back({"*17", Bits(8)});
  EXPECT_THAT(Create(over), StatusIs(kInvalid,
                                     "weight_config[\"*17\"]: pattern size (glob bytes "
                                     "+ regex instructions) 4099 is over the limit of "
                                     "4096 (max pattern size per config)"));
  EXPECT_THAT(Create(Globs(1000, 1000)), StatusIs(kInvalid, HasSubstr("(max pattern size")));
  // A regex's size is its compiled program: short keys with counted repeats add up fast.
  std::vector<WeightConfigEntry> repeats;
  for (int i = 0; i < 20; ++i) repeats.push_back({absl::StrCat("re:.{1000}", i), Bits(8)});
  EXPECT_THAT(Create(repeats),
              StatusIs(kInvalid, AllOf(StartsWith("weight_config[\"re:.{1000}2\"]: pattern size"),
                                       HasSubstr("over the limit of 4096"))));
  // Exact names do not count: they are hash lookups.
  EXPECT_THAT(Create(LayerEntries(10'000)), IsOk());
}

TEST(ConfigLimitsTest, RegexCount) {
  auto regexes = [](size_t n) {
    std::vector<WeightConfigEntry> e;
    for (size_t i = 0; i < n; ++i) e.push_back({absl::StrCat("re:.*\\.", i, "\\..*"), Bits(8)});
    return e;
  };
  EXPECT_THAT(Create(regexes(kMaxWeightConfigRegexes - 1)), IsOk());
  const WeightConfigResolver r = MustCreate(regexes(kMaxWeightConfigRegexes));
  EXPECT_EQ(r.Resolve("m.63.w")->decided_by, "re:.*\\.63\\..*");
  EXPECT_THAT(Create(regexes(kMaxWeightConfigRegexes + 1)),
              StatusIs(kInvalid,
                       "weight_config[\"re:.*\\.64\\..*\"]: regex count 65 is over the "
                       "limit of 64 (max regexes per config)"));
  ConfigLimits many;
  many.max_pattern_size = 1 << 20;
  EXPECT_THAT(Create(regexes(1000), many), StatusIs(kInvalid, HasSubstr("(max regexes")));
  // Globs do not count against the regex limit.
  EXPECT_THAT(Create(Globs(kMaxWeightConfigRegexes + 1, 8)), IsOk());
}

TEST(ConfigLimitsTest, RegexNestingAndMemoryInAConfig) {
  const std::string at = "re:" + std::string(64, '(') + "a" + std::string(64, ')');
  const std::string over = "re:" + std::string(65, '(') + "a" + std::string(65, ')');
  EXPECT_THAT(Create({{at, Bits(8)}}), IsOk());
  EXPECT_THAT(Create({{over, Bits(8)}}),
              StatusIs(kInvalid, AllOf(StartsWith("weight_config[\"re:((((("),
                                       HasSubstr("groups nested 65 deep, over the limit of 64"))));
  ConfigLimits tight;
  tight.regex_max_mem = 16 << 10;
  EXPECT_THAT(Create({{"re:[a-z]{1000}[0-9]{1000}", Bits(8)}}), IsOk());
  EXPECT_THAT(Create({{"re:[a-z]{1000}[0-9]{1000}", Bits(8)}}, tight),
              StatusIs(kInvalid, HasSubstr("pattern too large")));
}

// Resolve's work per name is bounded by pattern size x name bytes: with the pattern budget full
// of hostile globs and a name at the limit, it still finishes (and matches what it should).
TEST(ConfigLimitsTest, WorstCaseResolveFinishes) {
  std::vector<WeightConfigEntry> e;
  for (size_t i = 0; i < 4; ++i) {
    e.push_back({"*" + std::string(1022 - i, 'a') + "b", Bits(8)});
  }
  const WeightConfigResolver r = MustCreate(std::move(e));
  const std::string name(kMaxTensorNameBytes, 'a');
  EXPECT_EQ(r.Resolve(name)->match_kind, "default");
  EXPECT_EQ(r.Resolve(std::string(kMaxTensorNameBytes - 1, 'a') + "b")->match_kind, "pattern");
}

}  // namespace
}  // namespace rtnq
