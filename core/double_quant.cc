#include "core/double_quant.h"

#include <cstdint>

namespace rtnq {

void DoubleQuantizeScales(const QuantConfig& config, const KernelTable& kernels,
                          std::vector<float>& scales) {
  const int64_t n = static_cast<int64_t>(scales.size());
  if (n == 0) return;
  QuantConfig scale_cfg;
  scale_cfg.dtype = QuantDtype::kInt;
  scale_cfg.bits = config.double_quant_bits;
  scale_cfg.scheme = Scheme::kSym;  // asym is realized as "centre, quantize sym, shift back"
  scale_cfg.enable_full_range = false;
  const KernelParams params = MakeKernelParams(scale_cfg);
  const int64_t group_size = EffectiveGroupSize(config.double_quant_group_size, n);

  const bool centred = config.double_quant_scheme == Scheme::kAsym;
  float mean = 0.0f;
  if (centred) {
    double sum = 0;
    for (float s : scales) sum += s;
    mean = static_cast<float>(sum / static_cast<double>(n));
    for (float& s : scales) s = s - mean;
  }
  std::vector<uint8_t> codes(n);
  std::vector<float> group_scales(GroupsPerRow(n, group_size));
  std::vector<float> deq(n);
  kernels.quant_row(scales.data(), n, group_size, params, 1.0f, codes.data(), group_scales.data(),
                    nullptr, deq.data());
  for (int64_t i = 0; i < n; ++i) scales[i] = centred ? deq[i] + mean : deq[i];
}

}  // namespace rtnq
