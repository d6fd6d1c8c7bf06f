#include "core/layout/awq.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/io/huge_pages.h"
#include "core/kernels/kernel_params.h"
#include "core/layout/pack_bits.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

// Output columns packed per block: a 64-byte line of qweight words per input column.
constexpr int64_t kWordsPerBlock = 16;

// The word for outputs 8c..8c+7 of one input column, `at(o)` giving output o's 4-bit value.
template <typename At>
uint32_t AwqWord(int64_t c, At at) {
  uint32_t w = 0;
  for (int i = 0; i < 8; ++i) w |= static_cast<uint32_t>(at(8 * c + kAwqOrder[i])) << (4 * i);
  return w;
}

// The 8 words of input columns k0..k0+7 for outputs 8c..8c+7: 8 codes of each output row read at
// once, paired into bytes (slot 2j low nibble, slot 2j+1 high), then byte k of pair j becomes
// byte j of word k (a 4x8 byte transpose).
void AwqWords8(const uint8_t* codes, int64_t in, int64_t c, int64_t k0, int64_t cols,
               uint32_t* words) {
  constexpr uint64_t kLow = 0x0F0F0F0F0F0F0F0Full;
  uint64_t pair[4];
  for (int j = 0; j < 4; ++j) {
    uint64_t lo;
    uint64_t hi;
    std::memcpy(&lo, codes + (8 * c + kAwqOrder[2 * j]) * in + k0, 8);
    std::memcpy(&hi, codes + (8 * c + kAwqOrder[2 * j + 1]) * in + k0, 8);
    pair[j] = (lo & kLow) | ((hi & kLow) << 4);
  }
  for (int k = 0; k < 8; ++k) {
    uint32_t w = 0;
    for (int j = 0; j < 4; ++j) w |= static_cast<uint32_t>((pair[j] >> (8 * k)) & 0xFF) << (8 * j);
    words[(k0 + k) * cols + c] = w;
  }
}

}  // namespace

absl::Status CheckAwqCompatible(std::string_view name, const QuantConfig& config, int64_t out,
                                int64_t in) {
  const std::string prefix = absl::StrCat("tensor ", std::string(name), ": AWQ layout ");
  if (config.dtype == QuantDtype::kInt && (config.bits != 4 || config.scheme != Scheme::kAsym)) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "stores 4-bit asym weights only, got ", config.bits, "-bit ",
                     SchemeName(config.scheme),
                     "; use the gptq format (sym 4/8-bit runs on vLLM's Marlin kernels) or the "
                     "compressed-tensors format (2/4/8-bit, sym or asym)"));
  }
  RTNQ_RETURN_IF_ERROR(packing::CheckIntLinearLayout(prefix, config, out, in,
                                                     LoaderGroupSize(config.group_size, in)));
  if (out % 8 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "needs out_features (", out, ") divisible by 8 (8 codes per word)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TensorSpec>> PlanAwq(std::string_view layer, const QuantConfig& config,
                                                int64_t out, int64_t in) {
  RTNQ_RETURN_IF_ERROR(CheckAwqCompatible(layer, config, out, in));
  const std::string base(layer);
  const int64_t groups = in / LoaderGroupSize(config.group_size, in);
  return std::vector<TensorSpec>{
      {base + ".qweight", ElemType::kI32, {in, out / 8}},
      {base + ".qzeros", ElemType::kI32, {groups, out / 8}},
      {base + ".scales", ElemType::kF16, {groups, out}},
  };
}

absl::StatusOr<std::vector<PackedTensor>> PackAwq(const QuantizedTensor& q, std::string_view layer,
                                                  const Engine* engine) {
  RTNQ_RETURN_IF_ERROR(packing::ValidateQuantized(q, layer));
  const int64_t out = q.rows;
  const int64_t in = q.cols;
  RTNQ_ASSIGN_OR_RETURN(std::vector<TensorSpec> specs, PlanAwq(layer, q.config, out, in));
  if (q.shape.size() != 2) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", std::string(layer),
                                                   ": AWQ layout stores 2-D Linear weights, got ",
                                                   "shape ", ShapeString(q.shape)));
  }
  RTNQ_ASSIGN_OR_RETURN(const packing::CodeFormat f, packing::CodeFormatFor(q.config, layer));
  RTNQ_RETURN_IF_ERROR(packing::CheckCodeRange(q, layer, f, engine));

  // qweight is the transpose of the codes: a block owns kWordsPerBlock word columns (128
  // outputs) and walks the input columns, so its writes are whole cache lines.
  const int64_t cols = out / 8;
  PackedTensor qweight{specs[0].name, ElemType::kI32, specs[0].shape, {}};
  ResizeInHugePages(qweight.data, static_cast<size_t>(in * cols) * sizeof(uint32_t));
  uint32_t* const words = reinterpret_cast<uint32_t*>(qweight.data.data());
  const uint8_t* const codes = q.codes.data();
  const int64_t blocks = (cols + kWordsPerBlock - 1) / kWordsPerBlock;
  RTNQ_RETURN_IF_ERROR(packing::ForBlocks(engine, blocks, [&](int64_t blk) {
    const int64_t c0 = blk * kWordsPerBlock;
    const int64_t c1 = std::min(cols, c0 + kWordsPerBlock);
    const int64_t k8 = in / 8 * 8;
    for (int64_t k0 = 0; k0 < k8; k0 += 8) {
      for (int64_t c = c0; c < c1; ++c) AwqWords8(codes, in, c, k0, cols, words);
    }
    for (int64_t k = k8; k < in; ++k) {
      for (int64_t c = c0; c < c1; ++c) {
        words[k * cols + c] = AwqWord(c, [&](int64_t o) { return codes[o * in + k]; });
      }
    }
  }));

  const int64_t groups = q.scale_cols();
  std::vector<uint32_t> qzeros(static_cast<size_t>(groups * cols));
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t c = 0; c < cols; ++c) {
      qzeros[g * cols + c] = AwqWord(c, [&](int64_t o) { return q.zeros[o * groups + g]; });
    }
  }
  RTNQ_ASSIGN_OR_RETURN(
      std::vector<uint8_t> scales,
      packing::StoredScales(q, layer, ElemType::kF16, /*transpose=*/true, engine));

  std::vector<PackedTensor> result;
  result.push_back(std::move(qweight));
  result.push_back(packing::MakeTensor(specs[1].name, ElemType::kI32, specs[1].shape, qzeros));
  result.push_back(PackedTensor{specs[2].name, ElemType::kF16, specs[2].shape, std::move(scales)});
  return result;
}

absl::StatusOr<QuantizedTensor> UnpackAwq(absl::Span<const PackedTensor> tensors,
                                          std::string_view layer, int64_t group_size) {
  const std::string base(layer);
  RTNQ_ASSIGN_OR_RETURN(
      const PackedTensor* qweight,
      packing::FindPacked(tensors, base + ".qweight", ElemType::kI32, std::nullopt, 2));
  const int64_t in = qweight->shape[0];
  const int64_t out = qweight->shape[1] * 8;
  QuantConfig config;
  config.dtype = QuantDtype::kInt;
  config.bits = 4;
  config.scheme = Scheme::kAsym;
  config.group_size = group_size;
  RTNQ_ASSIGN_OR_RETURN(std::vector<TensorSpec> specs, PlanAwq(layer, config, out, in));
  std::vector<const PackedTensor*> found;
  for (const TensorSpec& s : specs) {
    RTNQ_ASSIGN_OR_RETURN(const PackedTensor* t,
                          packing::FindPacked(tensors, s.name, s.dtype, s.shape, s.shape.size()));
    found.push_back(t);
  }
  const int64_t cols = out / 8;
  const int64_t groups = specs[1].shape[0];

  QuantizedTensor q = packing::UnpackedHeader(base, ElemType::kF16, config, out, in,
                                              LoaderGroupSize(group_size, in));
  // Nibble i of word c holds output 8c + kAwqOrder[i].
  const auto unpack = [&](const std::vector<uint32_t>& w, int64_t rows, auto set) {
    for (int64_t k = 0; k < rows; ++k) {
      for (int64_t c = 0; c < cols; ++c) {
        for (int i = 0; i < 8; ++i)
          set(k, 8 * c + kAwqOrder[i], (w[k * cols + c] >> (4 * i)) & 15u);
      }
    }
  };
  q.codes.resize(out * in);
  unpack(packing::ReadValues<uint32_t>(*found[0]), in,
         [&](int64_t k, int64_t o, uint32_t v) { q.codes[o * in + k] = static_cast<uint8_t>(v); });
  q.zeros.resize(out * groups);
  unpack(packing::ReadValues<uint32_t>(*found[1]), groups, [&](int64_t g, int64_t o, uint32_t v) {
    q.zeros[o * groups + g] = static_cast<int32_t>(v);
  });
  const std::vector<float> scales = packing::WidenScales(*found[2]);  // [groups, out]
  q.scales.resize(out * groups);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) q.scales[o * groups + g] = scales[g * out + o];
  }
  return q;
}

}  // namespace rtnq
