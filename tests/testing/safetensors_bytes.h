// Safetensors files byte by byte, for tests, fuzzers and benchmarks that need malformed or huge
// headers (the writer only makes valid ones).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace rtnq::testing {

/// The 8-byte little-endian header length that starts a safetensors file.
inline std::string SafetensorsLengthPrefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  return out;
}

/// A file as the format lays it out: length prefix, header JSON, data region.
inline std::string RawSafetensorsFile(std::string_view header, std::string_view data) {
  std::string out = SafetensorsLengthPrefix(header.size());
  out.append(header);
  out.append(data);
  return out;
}

/// A file of `n` one-element F32 tensors back to back, named like the experts of a MoE
/// checkpoint, with `__metadata__` {"format": "pt"}: a header that grows with n.
inline std::string ManyTensorsFile(size_t n) {
  std::string h = "{\"__metadata__\":{\"format\":\"pt\"}";
  for (size_t i = 0; i < n; ++i) {
    absl::StrAppend(&h, ",\"model.layers.", i / 64, ".mlp.experts.", i % 64,
                    ".down_proj.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[",
                    4 * i, ",", 4 * i + 4, "]}");
  }
  return RawSafetensorsFile(h + "}", std::string(4 * n, '\0'));
}

}  // namespace rtnq::testing
