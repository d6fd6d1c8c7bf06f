// Huge-page advice is only a hint: buffers behave exactly like ordinary ones.
#include "core/io/huge_pages.h"

#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace rtnq {
namespace {

TEST(HugePages, ResizeGivesZeroedElementsAndDropsOldContents) {
  std::vector<uint32_t> v(10, 7);
  const size_t n = (size_t{9} << 20) / sizeof(uint32_t);  // spans several 2 MiB pages
  ResizeInHugePages(v, n);
  ASSERT_EQ(v.size(), n);
  for (size_t i = 0; i < n; i += 4099) EXPECT_EQ(v[i], 0u) << i;
  EXPECT_EQ(v.back(), 0u);
  v[n / 2] = 5;  // writable
  EXPECT_EQ(v[n / 2], 5u);
  ResizeInHugePages(v, 0);
  EXPECT_TRUE(v.empty());
}

TEST(HugePages, ReserveGivesAnEmptyVectorWithCapacity) {
  std::vector<uint8_t> v(3, 9);
  ReserveInHugePages(v, size_t{5} << 20);
  EXPECT_TRUE(v.empty());
  EXPECT_GE(v.capacity(), size_t{5} << 20);
  v.insert(v.end(), 1000, 7);  // appending stays within the reservation
  EXPECT_EQ(v[999], 7);
}

TEST(HugePages, AdviceOnSmallOrEmptyRangesIsHarmless) {
  AdviseHugePages(nullptr, 0);
  std::vector<uint8_t> small(100, 1);
  AdviseHugePages(small.data(), small.size());
  EXPECT_EQ(small[99], 1);
}

}  // namespace
}  // namespace rtnq
