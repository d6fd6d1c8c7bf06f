// weight_config patterns: RE2 regexes (linear time, limits on nesting and memory) and iterative
// globs whose work is counted.
#include "core/config/name_pattern.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "core/config/input_limits.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

NamePattern MustCompile(std::string_view key) {
  absl::StatusOr<NamePattern> p = NamePattern::Compile(key, kRegexMaxMemBytes, kMaxRegexNesting);
  EXPECT_THAT(p, IsOk()) << key;
  if (!p.ok()) std::abort();
  return *std::move(p);
}

std::string NestedGroups(int depth) {
  return "re:" + std::string(static_cast<size_t>(depth), '(') + "a" +
         std::string(static_cast<size_t>(depth), ')');
}

TEST(NamePatternTest, WhatIsAPattern) {
  EXPECT_TRUE(NamePattern::IsPattern("re:lm_head"));
  EXPECT_TRUE(NamePattern::IsPattern("*.fc1"));
  EXPECT_TRUE(NamePattern::IsPattern("blk.?.w"));
  EXPECT_FALSE(NamePattern::IsPattern("model.layers.0.mlp"));
  EXPECT_FALSE(NamePattern::IsPattern("rex:a"));
}

TEST(NamePatternTest, RegexIsAFullMatch) {
  const NamePattern p = MustCompile("re:model\\.layers\\.(0|1)\\..*");
  EXPECT_TRUE(p.is_regex());
  EXPECT_TRUE(p.FullMatch("model.layers.0.mlp.down_proj"));
  EXPECT_TRUE(p.FullMatch("model.layers.1."));
  EXPECT_FALSE(p.FullMatch("model.layers.10.mlp"));
  EXPECT_FALSE(p.FullMatch("xmodel.layers.0.mlp"));
  // The ECMAScript features users write: classes, \d \w \s, alternation, counted repeats,
  // non-greedy quantifiers, case-insensitive groups, anchors.
  EXPECT_TRUE(MustCompile("re:[a-z_]+\\.\\d{1,3}\\.\\w+").FullMatch("layers.12.q_proj"));
  EXPECT_TRUE(MustCompile("re:^.*?attn.*$").FullMatch("m.self_attn.o"));
  EXPECT_TRUE(MustCompile("re:(?i)LM_HEAD").FullMatch("lm_head"));
  EXPECT_TRUE(MustCompile("re:(?:q|k|v)_proj").FullMatch("v_proj"));
}

TEST(NamePatternTest, UnsupportedSyntaxIsRejectedWithRe2sMessage) {
  struct Case {
    const char* key;
    const char* error;
  };
  for (const Case& c :
       {Case{"re:(a)\\1", "invalid escape sequence: \\1"},
        Case{"re:(?=x)x", "invalid perl operator: (?="},
        Case{"re:(?<!x)y", "invalid perl operator: (?<"}, Case{"re:((", "missing ): (("},
        Case{"re:a{1001}", "invalid repetition size: {1001}"},
        Case{"re:[z-a]", "invalid character class range"}}) {
    SCOPED_TRACE(c.key);
    const std::string expr = std::string(c.key).substr(3);
    EXPECT_THAT(NamePattern::Compile(c.key, kRegexMaxMemBytes, kMaxRegexNesting),
                StatusIs(kInvalid, AllOf(StartsWith("invalid regex \"" + expr + "\": "),
                                         HasSubstr(c.error), HasSubstr("RE2 syntax"))));
  }
  EXPECT_THAT(NamePattern::Compile("re:", kRegexMaxMemBytes, kMaxRegexNesting),
              StatusIs(kInvalid, "empty regex"));
}

TEST(NamePatternTest, NestingJustBelowAtAndBeyondTheLimit) {
  for (const int limit : {1, 8, kMaxRegexNesting}) {
    SCOPED_TRACE(limit);
    EXPECT_THAT(NamePattern::Compile(NestedGroups(limit - 1), kRegexMaxMemBytes, limit), IsOk());
    absl::StatusOr<NamePattern> at =
        NamePattern::Compile(NestedGroups(limit), kRegexMaxMemBytes, limit);
    ASSERT_THAT(at, IsOk());
    EXPECT_TRUE(at->FullMatch("a"));
    EXPECT_THAT(NamePattern::Compile(NestedGroups(limit + 1), kRegexMaxMemBytes, limit),
                StatusIs(kInvalid, HasSubstr(absl::StrCat("groups nested ", limit + 1,
                                                          " deep, over the limit of ", limit))));
  }
}

// Issue 13: `re:` + 50,000 nested groups (the key-length limit stops it first in a config; here
// the pattern alone).
TEST(NamePatternTest, FiftyThousandNestedGroups) {
  absl::StatusOr<NamePattern> p =
      NamePattern::Compile(NestedGroups(50'000), kRegexMaxMemBytes, kMaxRegexNesting);
  EXPECT_THAT(p, StatusIs(kInvalid, HasSubstr("groups nested 50000 deep, over the limit of 64")));
  EXPECT_LT(p.status().message().size(), 300u);
  // Non-capturing and escaped parentheses, and parentheses in classes.
  EXPECT_EQ(RegexNestingDepth("(?:(?:a))"), 2);
  EXPECT_EQ(RegexNestingDepth("\\(\\(\\(a"), 0);
  EXPECT_EQ(RegexNestingDepth("[(((]a"), 0);
  EXPECT_EQ(RegexNestingDepth("[]((]a"), 0);
  EXPECT_EQ(RegexNestingDepth("[^]((]a(b)"), 1);
  EXPECT_EQ(RegexNestingDepth("(a)(b)((c))"), 2);
}

TEST(NamePatternTest, MemoryBudgetBoundsTheProgram) {
  // A 4,096-byte literal (the longest key) fits the default budget, and its size is counted.
  absl::StatusOr<NamePattern> literal =
      NamePattern::Compile("re:" + std::string(4093, 'a'), kRegexMaxMemBytes, kMaxRegexNesting);
  ASSERT_THAT(literal, IsOk());
  EXPECT_GE(literal->size(), 4093u);
  EXPECT_EQ(MustCompile("*.fc1").size(), 5u);
  // RE2 refuses counted repeats over 1000 up front...
  EXPECT_THAT(NamePattern::Compile("re:((a{100}){100}){100}", kRegexMaxMemBytes, kMaxRegexNesting),
              StatusIs(kInvalid, HasSubstr("invalid repetition size")));
  // ...and programs over the memory budget: ~14,000 instructions fit the default 256 KiB but
  // not 64 KiB, ~28,000 need more than 256 KiB and fit 1 MiB.
  const std::string group = "(abc|def|ghi|jkl){1000}";
  EXPECT_THAT(NamePattern::Compile("re:" + group, kRegexMaxMemBytes, kMaxRegexNesting), IsOk());
  EXPECT_THAT(NamePattern::Compile("re:" + group, 64 << 10, kMaxRegexNesting),
              StatusIs(kInvalid, AllOf(HasSubstr("pattern too large - compile failed"),
                                       HasSubstr("at most 65536 bytes compiled"))));
  EXPECT_THAT(NamePattern::Compile("re:" + group + group, kRegexMaxMemBytes, kMaxRegexNesting),
              StatusIs(kInvalid, AllOf(HasSubstr("pattern too large - compile failed"),
                                       HasSubstr("at most 262144 bytes compiled"))));
  EXPECT_THAT(NamePattern::Compile("re:" + group + group, 1 << 20, kMaxRegexNesting), IsOk());
}

// Matching is byte-wise, as the std::regex engine before it: `.` is one byte.
TEST(NamePatternTest, RegexesMatchBytes) {
  EXPECT_TRUE(
      MustCompile("re:a.b").FullMatch("a\xff"
                                      "b"));
  EXPECT_FALSE(
      MustCompile("re:a.b").FullMatch("a\xc3\xa9"
                                      "b"));  // é is two bytes
  EXPECT_TRUE(
      MustCompile("re:a..b").FullMatch("a\xc3\xa9"
                                       "b"));
  EXPECT_TRUE(MustCompile("re:mod\xc3\xa8le\\..*").FullMatch("mod\xc3\xa8le.w"));
}

// Issue 13: `re:(a+)+$` against "a"*28 + "!" took ~10 s in std::regex, doubling per character.
TEST(NamePatternTest, NestedQuantifiersRunInLinearTime) {
  const NamePattern p = MustCompile("re:(a+)+$");
  EXPECT_FALSE(p.FullMatch(std::string(28, 'a') + "!"));
  EXPECT_FALSE(p.FullMatch(std::string(kMaxTensorNameBytes - 1, 'a') + "!"));
  EXPECT_TRUE(p.FullMatch(std::string(kMaxTensorNameBytes, 'a')));
  const NamePattern q = MustCompile("re:(x+x+)+y");
  EXPECT_FALSE(q.FullMatch(std::string(kMaxTensorNameBytes, 'x')));
}

// Issue 13: `re:.*` against a 40,000-character name overflowed the stack (std::regex recursed per
// character). RE2 does not recurse: even names far over the limit match.
TEST(NamePatternTest, LongNamesDoNotRecurse) {
  const NamePattern any = MustCompile("re:.*");
  EXPECT_TRUE(any.FullMatch(std::string(40'000, 'x')));
  const NamePattern readme = MustCompile("re:model\\.layers\\.(0|1)\\..*");
  EXPECT_TRUE(readme.FullMatch("model.layers.0." + std::string(100'000, 'x')));
}

TEST(GlobTest, StarAndQuestionMark) {
  EXPECT_TRUE(GlobFullMatch("*", ""));
  EXPECT_TRUE(GlobFullMatch("model.*.mlp.*", "model.layers.0.mlp.fc1.weight"));
  EXPECT_FALSE(GlobFullMatch("model.*.mlp.*", "xmodel.a.mlp.b"));
  EXPECT_TRUE(GlobFullMatch("blk.?.w", "blk.1.w"));
  EXPECT_FALSE(GlobFullMatch("blk.?.w", "blk.12.w"));
  EXPECT_TRUE(GlobFullMatch("*a*b*c", "aaabbbccc"));
  EXPECT_FALSE(GlobFullMatch("*a*b*c", "cba"));
  EXPECT_TRUE(GlobFullMatch("**x", "x"));
  EXPECT_FALSE(GlobFullMatch("?", ""));
  // A `*` in the name is just a character, which the pattern's `*` absorbs too.
  EXPECT_TRUE(GlobFullMatch("a*", "a*b"));
  EXPECT_TRUE(GlobFullMatch("a*b", "a*b"));
}

// Work is counted, not timed: a typical glob visits each name byte about once; a hostile one is
// bounded by (pattern x name), never exponential.
TEST(GlobTest, StepsAreBoundedByPatternTimesName) {
  size_t steps = 0;
  const std::string name = "model.layers.31.self_attn.q_proj.weight";
  EXPECT_TRUE(GlobFullMatch("*.q_proj.weight", name, &steps));
  EXPECT_LE(steps, 3 * name.size());

  const std::string as(kMaxTensorNameBytes, 'a');
  for (const std::string& pattern :
       {std::string("*a*a*a*a*a*a*a*a*b"), "*" + std::string(64, 'a') + "b",
        "*" + std::string(2000, '?') + "b"}) {
    SCOPED_TRACE(pattern.substr(0, 20));
    EXPECT_FALSE(GlobFullMatch(pattern, as, &steps));
    EXPECT_LE(steps, (pattern.size() + 1) * (as.size() + 1));
    EXPECT_GT(steps, as.size());
  }
  // The bound is about the product, not its square: doubling the name doubles the work.
  size_t steps_2x = 0;
  const std::string pattern = "*" + std::string(64, 'a') + "b";
  GlobFullMatch(pattern, as, &steps);
  GlobFullMatch(pattern, as + as, &steps_2x);
  EXPECT_LT(steps_2x, 3 * steps);
}

}  // namespace
}  // namespace rtnq
