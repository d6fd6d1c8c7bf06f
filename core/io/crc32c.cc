#include "core/io/crc32c.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <climits>

namespace rtnq {

void Crc32c::Update(const void* data, size_t size) {
  // crc32_iscsi takes an int length and works on the raw register (no final inversion), so
  // chaining pieces is feeding the register back in; value() applies the final inversion.
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  while (size > 0) {
    const size_t n = std::min<size_t>(size, INT_MAX);
    state_ = crc32_iscsi(p, static_cast<int>(n), state_);
    p += n;
    size -= n;
  }
}

uint32_t ComputeCrc32c(const void* data, size_t size) {
  Crc32c c;
  c.Update(data, size);
  return c.value();
}

}  // namespace rtnq
