#include "bench/e2e/workload.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace rtnq::bench {
namespace {

// xorshift64: fast enough to fill 236 MiB in well under a second.
std::unique_ptr<std::string> RandomFloats(int64_t count, uint64_t seed) {
  auto buf = std::make_unique<std::string>(count * sizeof(float), '\0');
  uint64_t x = seed;
  for (int64_t i = 0; i < count; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const float v = (static_cast<float>(x >> 40) / static_cast<float>(1 << 24) - 0.5f) * 0.1f;
    std::memcpy(buf->data() + i * sizeof(float), &v, sizeof(float));
  }
  return buf;
}

}  // namespace

std::vector<std::vector<const BenchTensor*>> Workload::Split(int streams) const {
  std::vector<std::vector<const BenchTensor*>> lists(streams);
  for (size_t i = 0; i < tensors.size(); ++i) lists[i % streams].push_back(&tensors[i]);
  return lists;
}

Workload LlamaWorkload(int64_t target_bytes, int min_tensors) {
  constexpr int64_t kHidden = 4096;
  constexpr int64_t kIntermediate = 11008;
  Workload w;
  w.buffers.push_back(RandomFloats(kHidden * kHidden, 0x9e3779b97f4a7c15ull));
  w.buffers.push_back(RandomFloats(kIntermediate * kHidden, 0xd1b54a32d192ed03ull));
  struct Proj {
    const char* name;
    int64_t rows, cols;
    const std::string* data;
  };
  const Proj layer[] = {
      {"self_attn.q_proj", kHidden, kHidden, w.buffers[0].get()},
      {"self_attn.k_proj", kHidden, kHidden, w.buffers[0].get()},
      {"self_attn.v_proj", kHidden, kHidden, w.buffers[0].get()},
      {"self_attn.o_proj", kHidden, kHidden, w.buffers[0].get()},
      {"mlp.gate_proj", kIntermediate, kHidden, w.buffers[1].get()},
      {"mlp.up_proj", kIntermediate, kHidden, w.buffers[1].get()},
      {"mlp.down_proj", kHidden, kIntermediate, w.buffers[1].get()},
  };
  for (int i = 0; w.tensors.empty() || w.total_bytes < target_bytes ||
                  static_cast<int>(w.tensors.size()) < min_tensors;
       ++i) {
    const Proj& p = layer[i % 7];
    w.tensors.push_back(
        {absl::StrCat("model.layers.", i / 7, ".", p.name, ".weight"), {p.rows, p.cols}, p.data});
    w.total_bytes += static_cast<int64_t>(p.data->size());
  }
  return w;
}

Workload UniformWorkload(int count, const std::vector<int64_t>& shape) {
  int64_t elements = 1;
  for (int64_t d : shape) elements *= d;
  Workload w;
  w.buffers.push_back(RandomFloats(elements, 0x2545f4914f6cdd1dull));
  for (int i = 0; i < count; ++i) {
    w.tensors.push_back({absl::StrCat("t", i, ".weight"), shape, w.buffers[0].get()});
    w.total_bytes += static_cast<int64_t>(w.buffers[0]->size());
  }
  return w;
}

}  // namespace rtnq::bench
