// The client-side view of the server harness's test tensors (tests/server/harness.h).
#pragma once

#include <cstdint>
#include <optional>

#include "client/backend.h"
#include "tests/server/harness.h"

namespace rtnq::client::testing {

/// A request for `t`, borrowing its bytes; no CRC32C (the session computes it).
inline TensorRequest Request(const server::testing::Tensor& t) {
  return TensorRequest{{t.name,
                        *ParseElemType(t.dtype),
                        t.shape,
                        {reinterpret_cast<const uint8_t*>(t.data.data()), t.data.size()}},
                       std::nullopt};
}

}  // namespace rtnq::client::testing
