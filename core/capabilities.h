// What this build of the core quantizes: the one list that the server's GetServerInfo and local
// `rtnq info` both report, so the two cannot disagree.
#pragma once

#include <string>
#include <vector>

#include "core/config/quant_config.h"
#include "core/dtype.h"

namespace rtnq {

/// The core's capabilities, spelled as the API spells them.
struct CoreCapabilities {
  std::vector<std::string> input_dtypes;  ///< safetensors dtypes quantized ("F32", ...)
  std::vector<std::string> quant_dtypes;  ///< QuantDtypeName of every dtype a config may name
  std::vector<int> int_bits;              ///< bit widths of dtype int
  std::vector<std::string> presets;       ///< names PresetPatch accepts
};

/// The capabilities of this build (computed once).
inline const CoreCapabilities& Capabilities() {
  static const CoreCapabilities* const caps = [] {
    auto* c = new CoreCapabilities;
    for (ElemType t : {ElemType::kF32, ElemType::kF16, ElemType::kBF16}) {
      c->input_dtypes.push_back(ElemTypeName(t));
    }
    for (QuantDtype d : {QuantDtype::kInt, QuantDtype::kNf4, QuantDtype::kFp4, QuantDtype::kFp4E2M1,
                         QuantDtype::kFp32}) {
      c->quant_dtypes.push_back(QuantDtypeName(d));
    }
    for (int b = 1; b <= 8; ++b) c->int_bits.push_back(b);
    c->presets = {"BNB_NF4", "GGML_TYPE_Q4_K"};
    return c;
  }();
  return *caps;
}

}  // namespace rtnq
