// Quantizes a small tensor through the installed rtnq::core and checks the round trip: values on
// the int4 grid come back bit for bit, others within half a step of their group's grid.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "client/tensor_selection.h"  // an rtnq::client header resolves from the install tree
#include "core/engine.h"
#include "core/quantize.h"
#include "rtnq/version.h"

namespace {

int Fail(const char* what) {
  std::fprintf(stderr, "rtnq_consumer: %s\n", what);
  return 1;
}

}  // namespace

int main() {
  constexpr int kRows = 4, kCols = 64, kGroup = 32;
  std::vector<float> on_grid(kRows * kCols), off_grid(kRows * kCols);
  for (int i = 0; i < kRows * kCols; ++i) {
    on_grid[i] = static_cast<float>(i % 16);  // asym int4, one step of 1.0 per group
    off_grid[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
  }

  auto engine = rtnq::Engine::Create({.threads = 1, .kernels = "reference"});
  if (!engine.ok()) return Fail("Engine::Create failed");
  rtnq::QuantConfig config;  // int4 asym
  config.group_size = kGroup;

  for (const std::vector<float>* values : {&on_grid, &off_grid}) {
    rtnq::TensorInput input;
    input.name = "layer.weight";
    input.shape = {kRows, kCols};
    input.data = {reinterpret_cast<const uint8_t*>(values->data()), values->size() * sizeof(float)};
    auto q = rtnq::QuantizeTensor(input, config, {}, **engine);
    if (!q.ok()) return Fail(std::string(q.status().message()).c_str());
    if (!q->quantized || q->fake.size() != values->size() * sizeof(float)) {
      return Fail("tensor not quantized");
    }
    std::vector<float> fake(values->size());
    std::memcpy(fake.data(), q->fake.data(), q->fake.size());
    if (values == &on_grid) {
      if (std::memcmp(fake.data(), values->data(), q->fake.size()) != 0) {
        return Fail("values on the int4 grid changed");
      }
      continue;
    }
    for (int g = 0; g < kRows * kCols; g += kGroup) {
      const auto [lo, hi] = std::minmax_element(values->begin() + g, values->begin() + g + kGroup);
      const float step = (std::max(*hi, 0.0f) - std::min(*lo, 0.0f)) / 15.0f;
      for (int i = g; i < g + kGroup; ++i) {
        if (!(std::fabs(fake[i] - (*values)[i]) <= step * 0.5f * 1.0001f)) {
          return Fail("error beyond half a quantization step");
        }
      }
    }
  }
  std::printf("rtnq %s: quantized through the installed rtnq::core\n", RTNQ_VERSION);
  return 0;
}
