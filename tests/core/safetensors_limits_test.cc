// Hostile safetensors headers (issue 13): deep nesting, many tensors, long names; each limit just
// below, at and well beyond its value. The CLI's inspect/quantize/verify read headers this way.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/config/input_limits.h"
#include "core/io/safetensors_header.h"
#include "tests/testing/safetensors_bytes.h"
#include "tests/testing/scaling.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::IsOk;
using ::rtnq::testing::StatusIs;
using ::testing::AllOf;
using ::testing::EndsWith;
using ::testing::HasSubstr;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

// A whole file: length prefix, header, `data_bytes` zero bytes.
std::string File(const std::string& header, size_t data_bytes) {
  return ::rtnq::testing::RawSafetensorsFile(header, std::string(data_bytes, '\0'));
}

absl::StatusOr<SafetensorsLayout> Parse(const std::string& file,
                                        const SafetensorsLimits& limits = {}) {
  return ParseSafetensorsLayout(
      "x.safetensors",
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(file.data()), file.size()), limits);
}

std::string ManyTensors(size_t n) { return ::rtnq::testing::ManyTensorsFile(n); }

std::string OneTensor(const std::string& name) {
  return File("{\"" + name + R"(":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
}

// `shape` nested `depth` arrays deep (the tensor entry adds 2 levels: the header and the entry).
std::string DeepShape(size_t depth) {
  return File(R"({"a":{"dtype":"F32","shape":)" + std::string(depth, '[') + "1" +
                  std::string(depth, ']') + R"(,"data_offsets":[0,4]}})",
              4);
}

// Issue 13: a header nested 1M deep in `shape` crashed inspect and quantize.
TEST(SafetensorsLimitsTest, ShapeNestedAMillionDeep) {
  absl::StatusOr<SafetensorsLayout> l = Parse(DeepShape(1'000'000));
  EXPECT_THAT(l, StatusIs(kInvalid, AllOf(HasSubstr("safetensors file x.safetensors: header: JSON "
                                                    "nested deeper than the limit of 64 levels at "
                                                    "\"a\".\"shape\"[0][0]"),
                                          EndsWith("..."))));
  EXPECT_LT(l.status().message().size(), 400u);
}

TEST(SafetensorsLimitsTest, DepthJustBelowAtAndBeyondTheLimit) {
  // Within the limit the depth passes and the entry fails on its own rule, naming the field.
  for (const size_t depth : {size_t{61}, size_t{62}}) {
    EXPECT_THAT(Parse(DeepShape(depth)),
                StatusIs(kInvalid, HasSubstr("tensor \"a\": shape[0] is not an integer ([[[[")));
  }
  EXPECT_THAT(Parse(DeepShape(63)), StatusIs(kInvalid, HasSubstr("nested deeper than the limit")));
  SafetensorsLimits shallow;
  shallow.max_json_depth = 3;  // what a valid header needs
  EXPECT_THAT(Parse(OneTensor("w"), shallow), IsOk());
  EXPECT_THAT(Parse(DeepShape(2), shallow),
              StatusIs(kInvalid, HasSubstr("limit of 3 levels at \"a\".\"shape\"[0]")));
}

// Issue 13: 16k tensors took 2-3 s and 50k over 20 s (nlohmann's callback parser rescanned the
// whole object after each entry). Now n log n: 8x the tensors cost nowhere near 64x.
TEST(SafetensorsLimitsTest, ManyTensorsParseInNearLinearTime) {
  for (const size_t n : {size_t{16'000}, size_t{50'000}}) {
    absl::StatusOr<SafetensorsLayout> l = Parse(ManyTensors(n));
    ASSERT_THAT(l, IsOk());
    ASSERT_EQ(l->tensors.size(), n);
    EXPECT_EQ(l->tensors.back().end, 4 * n);
    EXPECT_EQ(l->metadata.at("format"), "pt");
  }
  const std::string small = ManyTensors(12'500), large = ManyTensors(100'000);
  ::rtnq::testing::ExpectSubquadratic([&] { ASSERT_THAT(Parse(small), IsOk()); },
                                      [&] { ASSERT_THAT(Parse(large), IsOk()); }, 8);
}

TEST(SafetensorsLimitsTest, TensorCount) {
  SafetensorsLimits limits;
  limits.max_tensors = 100;
  EXPECT_THAT(Parse(ManyTensors(99), limits), IsOk());
  EXPECT_THAT(Parse(ManyTensors(100), limits), IsOk());  // __metadata__ is not a tensor
  for (const size_t n : {size_t{101}, size_t{10'000}}) {
    EXPECT_THAT(Parse(ManyTensors(n), limits),
                StatusIs(kInvalid, HasSubstr(absl::StrCat("header lists ", n,
                                                          " tensors, over the limit of 100 (max "
                                                          "tensors per file)"))));
  }
}

TEST(SafetensorsLimitsTest, TensorNameLength) {
  for (const size_t n : {kMaxTensorNameBytes - 1, kMaxTensorNameBytes}) {
    absl::StatusOr<SafetensorsLayout> l = Parse(OneTensor(std::string(n, 'w')));
    ASSERT_THAT(l, IsOk());
    EXPECT_EQ(l->tensors[0].name.size(), n);
  }
  for (const size_t n : {kMaxTensorNameBytes + 1, size_t{1} << 20}) {
    EXPECT_THAT(Parse(OneTensor(std::string(n, 'w'))),
                StatusIs(kInvalid, AllOf(HasSubstr(absl::StrCat("(", n, " bytes): name length ", n,
                                                                " is over the limit of 4096")))));
  }
}

TEST(SafetensorsLimitsTest, HeaderBytes) {
  const std::string file = OneTensor("w");
  const uint64_t header = file.size() - 8 - 4;
  SafetensorsLimits limits;
  limits.max_header_bytes = header + 1;
  EXPECT_THAT(Parse(file, limits), IsOk());
  limits.max_header_bytes = header;
  EXPECT_THAT(Parse(file, limits), IsOk());
  limits.max_header_bytes = header - 1;
  EXPECT_THAT(Parse(file, limits),
              StatusIs(kInvalid, HasSubstr(absl::StrCat("header length ", header,
                                                        " exceeds the limit of ", header - 1))));
  limits.max_header_bytes = 8;
  EXPECT_THAT(Parse(ManyTensors(1000), limits), StatusIs(kInvalid, HasSubstr("exceeds the limit")));
}

// Errors name the tensor and the field, escaped: a hostile name cannot forge lines.
TEST(SafetensorsLimitsTest, ErrorsNameTensorAndFieldEscaped) {
  EXPECT_THAT(Parse(File(R"({"a\nb":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4)),
              StatusIs(kInvalid, HasSubstr("tensor \"a\\x0ab\": unknown key \"x\"")));
  EXPECT_THAT(
      Parse(File(R"({"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", 4)),
      StatusIs(kInvalid, HasSubstr("header: duplicate key \"dtype\" in \"w\"")));
}

// What the writer produces, the reader accepts: the writer refuses what the reader would.
TEST(SafetensorsLimitsTest, WriterKeepsToTheReadersLimits) {
  std::vector<TensorSpec> ok{{std::string(kMaxTensorNameBytes, 'w'), ElemType::kF32, {1}}};
  absl::StatusOr<BuiltHeader> built = BuildSafetensorsHeader(ok, {});
  ASSERT_THAT(built, IsOk());
  EXPECT_THAT(Parse(built->bytes + std::string(4, '\0')), IsOk());
  std::vector<TensorSpec> long_name{
      {std::string(kMaxTensorNameBytes + 1, 'w'), ElemType::kF32, {1}}};
  EXPECT_THAT(BuildSafetensorsHeader(long_name, {}),
              StatusIs(kInvalid, HasSubstr("name length 4097 is over the limit of 4096")));
}

// Building a header is linear too (ordered_json's operator[] scans for each key).
TEST(SafetensorsLimitsTest, BuildingManyTensorsIsNearLinear) {
  auto specs = [](size_t n) {
    std::vector<TensorSpec> s;
    for (size_t i = 0; i < n; ++i)
      s.push_back({absl::StrCat("t.", i, ".weight"), ElemType::kF16, {2}});
    return s;
  };
  const std::vector<TensorSpec> small = specs(12'500), large = specs(100'000);
  ::rtnq::testing::ExpectSubquadratic(
      [&] { ASSERT_THAT(BuildSafetensorsHeader(small, {}), IsOk()); },
      [&] { ASSERT_THAT(BuildSafetensorsHeader(large, {}), IsOk()); }, 8);
}

}  // namespace
}  // namespace rtnq
