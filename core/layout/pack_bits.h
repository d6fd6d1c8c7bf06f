// What every packed layout (INC, GPTQ, compressed-tensors, AWQ) shares: code ranges, bit fields
// in int32 words, packed-tensor I/O with shape checks, and stored scales in a narrower dtype.
// Internal to core's packers; the layouts' public API is in their own headers.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config/quant_config.h"
#include "core/dtype.h"
#include "core/engine.h"
#include "core/layout/packed_tensor.h"
#include "core/quantize.h"

// Packed tensors are built with memcpy, which is only the safetensors byte order on such hosts.
static_assert(std::endian::native == std::endian::little, "packing assumes a little-endian host");

namespace rtnq::packing {

inline uint32_t Mask(int bits) { return (1u << bits) - 1u; }

/// A tensor built from `values` (their bytes, little-endian).
template <typename T>
PackedTensor MakeTensor(std::string name, ElemType dtype, std::vector<int64_t> shape,
                        const std::vector<T>& values) {
  PackedTensor t{std::move(name), dtype, std::move(shape), {}};
  t.data.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

/// A tensor's bytes as values of T (the caller has checked the dtype).
template <typename T>
std::vector<T> ReadValues(const PackedTensor& t) {
  std::vector<T> out(t.data.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), t.data.data(), out.size() * sizeof(T));
  return out;
}

/// Finds `name` among `tensors` and checks its dtype, its shape (when `shape` is given, else its
/// rank) and its byte count. InvalidArgument naming the tensor, expected and actual.
absl::StatusOr<const PackedTensor*> FindPacked(absl::Span<const PackedTensor> tensors,
                                               const std::string& name, ElemType dtype,
                                               std::optional<std::vector<int64_t>> shape,
                                               size_t rank);

/// How a tensor's code bytes map to `bits`-bit fields.
struct CodeFormat {
  int bits;
  bool is_signed;  ///< two's complement within `bits` (sign-extended on unpacking)
  int lo;
  int hi;
};

/// The code range of `cfg` (int sym signed, int asym unsigned, float-4 4-bit signed).
absl::StatusOr<CodeFormat> CodeFormatFor(const QuantConfig& cfg, std::string_view name);

inline int CodeOfByte(uint8_t byte, const CodeFormat& f) {
  return f.is_signed ? static_cast<int>(static_cast<int8_t>(byte)) : static_cast<int>(byte);
}

inline uint8_t ByteOfField(uint32_t field, const CodeFormat& f) {
  int v = static_cast<int>(field);
  if (f.is_signed && v >= (1 << (f.bits - 1))) v -= 1 << f.bits;
  return static_cast<uint8_t>(v);
}

/// The sizes QuantizedTensor promises; InvalidArgument for an unquantized tensor, Internal for a
/// broken invariant (a bug upstream).
absl::Status ValidateQuantized(const QuantizedTensor& q, std::string_view name);

/// What an unpacker rebuilds before filling codes, scales and zero points: tensor `name`, a
/// [rows, cols] weight quantized with `config` at effective group size `group_size`, its scales
/// read from a tensor of `scale_dtype`.
QuantizedTensor UnpackedHeader(std::string name, ElemType scale_dtype, const QuantConfig& config,
                               int64_t rows, int64_t cols, int64_t group_size);

/// Runs fn(block) for every block: in the engine's arena when one is given, else serially.
absl::Status ForBlocks(const Engine* engine, int64_t blocks,
                       const std::function<void(int64_t)>& fn);

/// Internal naming the first code outside f's range or zero point outside 0..2^bits-1.
absl::Status CheckCodeRange(const QuantizedTensor& q, std::string_view name, const CodeFormat& f,
                            const Engine* engine = nullptr);

/// Writes a masked `bits`-bit value at bit `pos` of a little-endian stream of words that lie
/// `stride` words apart. A value crossing a word edge puts its low bits at the top of one word
/// and its high bits at the bottom of the next (AutoGPTQ's 3-bit packing, compressed-tensors'
/// dense packing).
inline void PutBits(uint32_t* words, int64_t stride, int64_t pos, int bits, uint32_t v) {
  const int64_t w = pos >> 5;
  const int off = static_cast<int>(pos & 31);
  words[w * stride] |= v << off;
  if (off + bits > 32) words[(w + 1) * stride] |= v >> (32 - off);
}

inline uint32_t GetBits(const uint32_t* words, int64_t stride, int64_t pos, int bits) {
  const int64_t w = pos >> 5;
  const int off = static_cast<int>(pos & 31);
  uint32_t v = words[w * stride] >> off;
  if (off + bits > 32) v |= words[(w + 1) * stride] << (32 - off);
  return v & Mask(bits);
}

/// Byte b of a uint64 replicated into all 8 bytes.
constexpr uint64_t Bytes(uint64_t b) { return b * 0x0101010101010101ull; }

/// Gathers the low B bits of each of the 8 bytes of x (byte e -> bits B*e..B*e+B-1) by merging
/// neighbouring fields pairwise three times.
template <int B>
uint64_t GatherFields(uint64_t x) {
  static_assert(B == 2 || B == 4);
  x = (x | (x >> (8 - B))) & (((uint64_t{1} << (2 * B)) - 1) * 0x0001000100010001ull);
  x = (x | (x >> (16 - 2 * B))) & (((uint64_t{1} << (4 * B)) - 1) * 0x0000000100000001ull);
  return (x | (x >> (32 - 4 * B))) & ((uint64_t{1} << (8 * B)) - 1);
}

/// One word from the 32/B consecutive codes at `c` (in range): each masked to B bits and XORed
/// with `flip` (2^(B-1) in every byte for sym, which is adding 2^(B-1) modulo 2^B), code 0
/// lowest. B = 2, 4 or 8.
template <int B>
uint32_t PackWord(const uint8_t* c, uint64_t flip) {
  if constexpr (B == 8) {
    uint32_t w;
    std::memcpy(&w, c, 4);
    return w ^ static_cast<uint32_t>(flip);
  } else {
    uint32_t w = 0;
    for (int k = 0; k < 4 / B; ++k) {
      uint64_t x;
      std::memcpy(&x, c + 8 * k, 8);
      x = (x & Bytes((1u << B) - 1)) ^ flip;
      w |= static_cast<uint32_t>(GatherFields<B>(x) << (8 * B * k));
    }
    return w;
  }
}

/// The rules every int layout that loaders read as Linear weights shares (GPTQ, AWQ,
/// compressed-tensors): dtype int, group_dim 1, no double quantization, a non-empty [out, in]
/// weight, group size `gs` (the configured one; -1 already replaced by `in`) > 0 dividing `in`.
/// InvalidArgument starting with `prefix` (e.g. "tensor x: GPTQ layout ") and naming the rule.
absl::Status CheckIntLinearLayout(std::string_view prefix, const QuantConfig& config, int64_t out,
                                  int64_t in, int64_t gs);

/// float -> F16 bits, refusing a finite value that float16 cannot hold (InvalidArgument naming
/// tensor `name`, `what` and the index).
absl::StatusOr<uint16_t> ToHalfChecked(float v, std::string_view name, std::string_view what,
                                       int64_t index);

/// q's float32 scales [rows, groups] as stored in `dtype` (F32 as they are; F16 and BF16 rounded
/// to nearest even), [groups, rows] when `transpose`. InvalidArgument naming the tensor when a
/// scale overflows the dtype; Internal for a non-finite scale. Same bytes for any engine.
absl::StatusOr<std::vector<uint8_t>> StoredScales(const QuantizedTensor& q, std::string_view name,
                                                  ElemType dtype, bool transpose,
                                                  const Engine* engine);

/// Stored scales (F32, F16 or BF16) widened back to float32, exactly.
std::vector<float> WidenScales(const PackedTensor& t);

}  // namespace rtnq::packing
