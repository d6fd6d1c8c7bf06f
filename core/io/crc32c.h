// CRC32C (Castagnoli), the checksum a TensorHeader may carry, computed with ISA-L.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rtnq {

/// Incremental CRC32C: Update with consecutive pieces, then value(). Standard CRC32C:
/// the value over "123456789" is 0xE3069283.
class Crc32c {
 public:
  void Update(const void* data, size_t size);
  uint32_t value() const { return ~state_; }

 private:
  uint32_t state_ = 0xFFFFFFFFu;
};

/// CRC32C of one buffer.
uint32_t ComputeCrc32c(const void* data, size_t size);

}  // namespace rtnq
