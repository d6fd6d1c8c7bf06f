// What the end-to-end benchmark sends: float32 tensors shaped like a Llama-2-7B decoder layer,
// random values generated once and shared by every tensor of the same byte size.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace rtnq::bench {

/// One tensor to send; `data` points into the Workload's buffers.
struct BenchTensor {
  std::string name;
  std::vector<int64_t> shape;
  const std::string* data = nullptr;
};

/// A list of tensors and the buffers behind them.
struct Workload {
  std::vector<BenchTensor> tensors;
  int64_t total_bytes = 0;
  /// Splits the tensors round-robin over `streams` lists.
  std::vector<std::vector<const BenchTensor*>> Split(int streams) const;

  // Two buffers: 4096x4096 and 11008x4096 float32 (64 and 172 MiB); node-stable addresses.
  std::vector<std::unique_ptr<std::string>> buffers;
};

/// Tensors in the order of a Llama-2-7B layer (q, k, v, o 4096x4096; gate, up 11008x4096; down
/// 4096x11008), layer after layer, until at least `target_bytes` and `min_tensors` tensors (at
/// least one). Values are uniform in [-0.05, 0.05): the distribution does not change the work of
/// plain RTN.
Workload LlamaWorkload(int64_t target_bytes, int min_tensors = 1);

/// `count` float32 tensors of `shape` ("t<i>.weight"), sharing one buffer of random values.
Workload UniformWorkload(int count, const std::vector<int64_t>& shape);

}  // namespace rtnq::bench
