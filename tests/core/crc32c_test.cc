// CRC32C through ISA-L: the published check values and chaining.
#include "core/io/crc32c.h"

#include <string>

#include "gtest/gtest.h"

namespace rtnq {
namespace {

TEST(Crc32cTest, StandardCheckValue) {
  EXPECT_EQ(ComputeCrc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(ComputeCrc32c("", 0), 0u);
  // 32 zero bytes: a published CRC32C test vector (RFC 3720, B.4).
  const std::string zeros(32, '\0');
  EXPECT_EQ(ComputeCrc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
}

TEST(Crc32cTest, IncrementalEqualsOneShot) {
  std::string data;
  for (int i = 0; i < 10007; ++i) data.push_back(static_cast<char>(i * 31 + 7));
  for (size_t cut : {size_t{0}, size_t{1}, size_t{4096}, data.size()}) {
    Crc32c c;
    c.Update(data.data(), cut);
    c.Update(data.data() + cut, data.size() - cut);
    EXPECT_EQ(c.value(), ComputeCrc32c(data.data(), data.size()));
  }
}

}  // namespace
}  // namespace rtnq
