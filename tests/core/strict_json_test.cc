// The bounded JSON parser behind configs and safetensors headers (issue 13): depth limit, linear
// duplicate-key check, error messages that never echo or recurse over unbounded input.
#include "core/config/strict_json.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "core/config/input_limits.h"
#include "tests/testing/scaling.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

std::string Nested(char open, char close, int depth, std::string_view inner = "1") {
  return std::string(static_cast<size_t>(depth), open) + std::string(inner) +
         std::string(static_cast<size_t>(depth), close);
}

// `depth` objects, each holding the next under key "k".
std::string NestedObjects(int depth) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += "{\"k\":";
  s += "1";
  s += std::string(static_cast<size_t>(depth), '}');
  return s;
}

TEST(ParseJsonBoundedTest, KeepsListedOrderAndValues) {
  absl::StatusOr<nlohmann::ordered_json> j =
      ParseJsonBounded(R"({"z": 1, "a": [true, null, -2, 3.5, "s"], "m": {"x": {}}})", 64);
  ASSERT_THAT(j, IsOk());
  EXPECT_EQ(j->dump(), R"({"z":1,"a":[true,null,-2,3.5,"s"],"m":{"x":{}}})");
  EXPECT_EQ(ParseJsonBounded("7", 64)->dump(), "7");
  EXPECT_EQ(ParseJsonBounded("[]", 1)->dump(), "[]");
}

TEST(ParseJsonBoundedTest, InvalidJsonIsInvalidArgumentWithPosition) {
  EXPECT_THAT(ParseJsonBounded("{\"a\":", 64),
              StatusIs(kInvalid, AllOf(StartsWith("invalid JSON: [json.exception.parse_error"),
                                       HasSubstr("column 6"))));
  EXPECT_THAT(ParseJsonBounded("", 64), StatusIs(kInvalid, StartsWith("invalid JSON")));
  EXPECT_THAT(ParseJsonBounded("{} x", 64), StatusIs(kInvalid, StartsWith("invalid JSON")));
  EXPECT_THAT(ParseJsonBounded("\"\xff\"", 64), StatusIs(kInvalid, HasSubstr("UTF-8")));
}

TEST(ParseJsonBoundedTest, ErrorMessagesAreBoundedAndEscaped) {
  // An unterminated 1 MB string: nlohmann's message quotes the token; ours cuts it.
  const std::string text = "[\"" + std::string(1 << 20, 'x') + "\n";
  absl::StatusOr<nlohmann::ordered_json> j = ParseJsonBounded(text, 64);
  ASSERT_THAT(j, StatusIs(kInvalid));
  EXPECT_LT(j.status().message().size(), 400u);
  EXPECT_THAT(std::string(j.status().message()), Not(HasSubstr("\n")));
}

TEST(ParseJsonBoundedTest, DepthJustBelowAtAndBeyondTheLimit) {
  for (const int limit : {1, 3, kMaxJsonDepth}) {
    SCOPED_TRACE(limit);
    EXPECT_THAT(ParseJsonBounded(Nested('[', ']', limit - 1), limit), IsOk());
    EXPECT_THAT(ParseJsonBounded(Nested('[', ']', limit), limit), IsOk());
    EXPECT_THAT(ParseJsonBounded(NestedObjects(limit), limit), IsOk());
    EXPECT_THAT(ParseJsonBounded(Nested('[', ']', limit + 1), limit),
                StatusIs(kInvalid, StartsWith(absl::StrCat("JSON nested deeper than the limit of ",
                                                           limit, " levels"))));
    EXPECT_THAT(ParseJsonBounded(NestedObjects(limit + 1), limit),
                StatusIs(kInvalid, HasSubstr("nested deeper")));
  }
}

// Issue 13: config_json of 200,000 nested `[` crashed the server (the error path recursed in the
// JSON library's dump()). Unterminated, as the attacker sent it, and balanced.
TEST(ParseJsonBoundedTest, TwoHundredThousandNestedBrackets) {
  const std::string open(200'000, '[');
  for (const std::string& text : {open, Nested('[', ']', 200'000)}) {
    absl::StatusOr<nlohmann::ordered_json> j = ParseJsonBounded(text, kMaxJsonDepth);
    EXPECT_THAT(j, StatusIs(kInvalid, AllOf(StartsWith("JSON nested deeper than the limit of 64 "
                                                       "levels at [0][0][0]"),
                                            EndsWith("..."))));
    EXPECT_LT(j.status().message().size(), 300u);
  }
}

// Issue 13: 10,000 nested objects in 60 KB raised peak memory by 195 MiB through quadratic path
// strings. Parsing stops at the limit, and the path in the message is cut.
TEST(ParseJsonBoundedTest, TenThousandNestedObjects) {
  const std::string text = NestedObjects(10'000);
  EXPECT_LT(text.size(), 61'000u);
  absl::StatusOr<nlohmann::ordered_json> j = ParseJsonBounded(text, kMaxJsonDepth);
  EXPECT_THAT(j, StatusIs(kInvalid, AllOf(HasSubstr("at \"k\".\"k\".\"k\""), EndsWith("..."))));
  EXPECT_LT(j.status().message().size(), 300u);
}

TEST(ParseJsonBoundedTest, DepthErrorNamesThePath) {
  EXPECT_THAT(ParseJsonBounded(R"({"weight_config": {"lm_head": {"bits": [[1]]}}})", 4),
              StatusIs(kInvalid,
                       "JSON nested deeper than the limit of 4 levels at "
                       "\"weight_config\".\"lm_head\".\"bits\"[0]"));
}

TEST(ParseJsonBoundedTest, DuplicateKeysAtEveryLevel) {
  EXPECT_THAT(ParseJsonBounded(R"({"a": 1, "b": 2, "a": 3})", 64),
              StatusIs(kInvalid, "duplicate key \"a\""));
  EXPECT_THAT(ParseJsonBounded(R"({"w": {"x": {"bits": 4, "bits": 8}}})", 64),
              StatusIs(kInvalid, "duplicate key \"bits\" in \"w\".\"x\""));
  EXPECT_THAT(ParseJsonBounded(R"([{"a": 1}, {"a": 2, "a": 3}])", 64),
              StatusIs(kInvalid, "duplicate key \"a\" in [1]"));
  // The same key in different objects is fine.
  EXPECT_THAT(ParseJsonBounded(R"({"a": {"a": 1}, "b": {"a": 2}})", 64), IsOk());
}

std::string ManyKeys(int n, bool duplicate_last) {
  std::string s = "{";
  for (int i = 0; i < n; ++i) absl::StrAppend(&s, i ? "," : "", "\"model.layers.", i, "\":", i);
  if (duplicate_last) absl::StrAppend(&s, ",\"model.layers.0\":0");
  return s + "}";
}

// Issue 13: 40,000 keys took 2-3 s (x10 for 4x input): nlohmann's ordered_map scans for every key
// it inserts. Now linear: a duplicate at the very end is found, and 8x the keys cost nowhere near
// 64x the time.
TEST(ParseJsonBoundedTest, ManyKeysAreLinear) {
  absl::StatusOr<nlohmann::ordered_json> j = ParseJsonBounded(ManyKeys(40'000, false), 64);
  ASSERT_THAT(j, IsOk());
  EXPECT_EQ(j->size(), 40'000u);
  EXPECT_EQ(j->begin().key(), "model.layers.0");
  EXPECT_THAT(ParseJsonBounded(ManyKeys(40'000, true), 64),
              StatusIs(kInvalid, "duplicate key \"model.layers.0\""));
  const std::string small = ManyKeys(10'000, false), large = ManyKeys(80'000, false);
  ::rtnq::testing::ExpectSubquadratic([&] { ASSERT_THAT(ParseJsonBounded(small, 64), IsOk()); },
                                      [&] { ASSERT_THAT(ParseJsonBounded(large, 64), IsOk()); }, 8);
}

TEST(JsonSnippetTest, CompactAndCut) {
  EXPECT_EQ(JsonSnippet(nlohmann::ordered_json::parse(R"({"a": [1, 2], "b": {}})")),
            R"({"a":[1,2],"b":{}})");
  EXPECT_EQ(JsonSnippet(nlohmann::json("x")), "\"x\"");
  EXPECT_EQ(JsonSnippet(nlohmann::json(nullptr)), "null");
  const std::string s = JsonSnippet(nlohmann::json(std::string(100'000, 'y')));
  EXPECT_THAT(s, AllOf(StartsWith("\"yyy"), EndsWith("..."), SizeIs(64)));
  EXPECT_EQ(JsonSnippet(nlohmann::json(std::string("\xff\xfe"))), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

// The value a config error quotes may be as deep as the parser allows, or deeper when built by a
// caller: the snippet never recurses.
TEST(JsonSnippetTest, DeepValueIsCutWithoutRecursion) {
  nlohmann::json deep = nlohmann::json::array();
  nlohmann::json* innermost = &deep;
  for (int i = 0; i < 200'000; ++i) {
    innermost->push_back(nlohmann::json::array());
    innermost = &innermost->back();
  }
  const std::string s = JsonSnippet(deep);
  EXPECT_THAT(s, AllOf(StartsWith("[[[["), EndsWith("..."), SizeIs(64)));
}

TEST(QuoteForMessageTest, EscapesAndCuts) {
  EXPECT_EQ(QuoteForMessage("lm_head.weight"), "\"lm_head.weight\"");
  EXPECT_EQ(QuoteForMessage("a\nb\"c\x01\xe2\x80\xa8"), "\"a\\x0ab\\\"c\\x01\\xe2\\x80\\xa8\"");
  EXPECT_EQ(QuoteForMessage(std::string(100, 'n'), 4), "\"nnnn\"... (100 bytes)");
  EXPECT_EQ(EscapeForMessage(std::string(10, 'n'), 4), "nnnn... (10 bytes)");
}

}  // namespace
}  // namespace rtnq
