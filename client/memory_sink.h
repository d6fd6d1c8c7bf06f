// A ResultSink that keeps a tensor's outputs in memory: for tests and for programs that want
// results as values rather than in a file. Holding outputs whole is exactly what RunQuantize
// avoids, so it does not use this.
#pragma once

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/backend.h"
#include "core/layout/packed_tensor.h"

namespace rtnq::client {

/// Collects the outputs of the last attempt Begun; `outputs` holds them once Quantize returned.
class MemorySink : public ResultSink {
 public:
  absl::Status Begin(const std::vector<TensorSpec>& specs) override {
    outputs.clear();
    for (const TensorSpec& s : specs) {
      absl::StatusOr<int64_t> n = CheckedNumElements(s.shape);
      if (!n.ok()) return n.status();
      outputs.push_back(PackedTensor{s.name, s.dtype, s.shape, {}});
      outputs.back().data.resize(static_cast<size_t>(*n) * ElemSize(s.dtype));
    }
    return absl::OkStatus();
  }
  absl::Status Write(size_t index, uint64_t offset, absl::Span<const uint8_t> data) override {
    if (index >= outputs.size() || offset > outputs[index].data.size() ||
        data.size() > outputs[index].data.size() - offset) {
      return absl::OutOfRangeError(absl::StrCat("output ", index, ": bytes [", offset, ", ",
                                                offset + data.size(), ") are outside its size"));
    }
    if (!data.empty()) std::memcpy(outputs[index].data.data() + offset, data.data(), data.size());
    return absl::OkStatus();
  }
  void Discard() override { outputs.clear(); }

  std::vector<PackedTensor> outputs;
};

}  // namespace rtnq::client
