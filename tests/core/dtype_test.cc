#include "core/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace rtnq {
namespace {

using ::rtnq::testing::StatusIs;
using ::testing::HasSubstr;

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

TEST(ElemType, NamesSizesAndParsing) {
  for (auto [name, size] : std::vector<std::pair<std::string, int>>{{"F64", 8},
                                                                    {"F32", 4},
                                                                    {"F16", 2},
                                                                    {"BF16", 2},
                                                                    {"I64", 8},
                                                                    {"I32", 4},
                                                                    {"I16", 2},
                                                                    {"I8", 1},
                                                                    {"U8", 1},
                                                                    {"BOOL", 1}}) {
    auto t = ParseElemType(name);
    ASSERT_TRUE(t.ok()) << name;
    EXPECT_EQ(ElemSize(*t), size);
    EXPECT_EQ(ElemTypeName(*t), name);
  }
  EXPECT_THAT(ParseElemType("F8_E4M3FNUZ"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("F8_E4M3FNUZ")));
  EXPECT_TRUE(IsQuantizableFloat(ElemType::kBF16));
  EXPECT_FALSE(IsQuantizableFloat(ElemType::kF64));
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(FloatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(FloatToBf16(FromBits(0x3f808000)), 0x3f80);  // tie, even stays
  EXPECT_EQ(FloatToBf16(FromBits(0x3f818000)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(FloatToBf16(FromBits(0x3f808001)), 0x3f81);
  EXPECT_EQ(FloatToBf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(NAN))));
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = Bf16ToFloat(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(FloatToBf16(f), h);
    }
  }
}

TEST(Half, ExactUpcastAndRoundTrip) {
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);
  EXPECT_EQ(HalfToFloat(0xfc00), -std::numeric_limits<float>::infinity());
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = HalfToFloat(static_cast<uint16_t>(h));
    if (!std::isnan(f)) {
      ASSERT_EQ(FloatToHalf(f), h) << h;
    }
  }
}

TEST(Half, RoundsToNearestEvenAndOverflows) {
  EXPECT_EQ(FloatToHalf(65519.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(65520.0f), 0x7c00);  // tie between 65504 and 65536 -> inf
  EXPECT_EQ(FloatToHalf(1e10f), 0x7c00);
  EXPECT_EQ(FloatToHalf(std::ldexp(1.0f, -25)), 0x0000);         // tie to even (0)
  EXPECT_EQ(FloatToHalf(std::ldexp(3.0f, -25)), 0x0002);         // 1.5 ulp -> 2
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);  // tie, even stays
  EXPECT_EQ(FloatToHalf(1.0f + std::ldexp(3.0f, -11)), 0x3c02);  // tie, odd rounds up
  EXPECT_EQ(FloatToHalf(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(NAN))));
}

}  // namespace
}  // namespace rtnq
