#include "core/layout/compressed_tensors.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "core/io/huge_pages.h"
#include "core/kernels/kernel_params.h"
#include "core/layout/pack_bits.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

using packing::CodeFormat;
using packing::CodeOfByte;
using packing::PutBits;

int64_t Words(int64_t n, int bits) { return (n * bits + 31) / 32; }

int64_t Groups(const QuantConfig& config, int64_t in) {
  return in / LoaderGroupSize(config.group_size, in);
}

// Rows packed per block: enough codes per block to amortize the task, whole rows each.
int64_t RowsPerBlock(int64_t in) { return std::max<int64_t>(1, (int64_t{1} << 16) / in); }

// weight_packed row r: full words with PackWord, the tail field by field (zero padded).
template <int B>
void PackRow(const uint8_t* codes, int64_t in, const CodeFormat& f, uint32_t* words) {
  constexpr int64_t n = 32 / B;
  const uint64_t flip = f.is_signed ? packing::Bytes(uint64_t{1} << (B - 1)) : 0;
  const int64_t full = in / n;
  for (int64_t w = 0; w < full; ++w) words[w] = packing::PackWord<B>(codes + w * n, flip);
  const uint32_t shift = f.is_signed ? 1u << (B - 1) : 0u;
  for (int64_t c = full * n; c < in; ++c) {
    const uint32_t u = static_cast<uint32_t>(CodeOfByte(codes[c], f)) + shift;
    PutBits(words, 1, c * B, B, u & packing::Mask(B));
  }
}

}  // namespace

absl::Status CheckCompressedTensorsCompatible(std::string_view name, const QuantConfig& config,
                                              int64_t out, int64_t in) {
  const std::string prefix =
      absl::StrCat("tensor ", std::string(name), ": compressed-tensors pack-quantized ");
  const int64_t gs = LoaderGroupSize(config.group_size, in);
  RTNQ_RETURN_IF_ERROR(packing::CheckIntLinearLayout(prefix, config, out, in, gs));
  const int b = config.bits;
  if (b == 3 || b == 5 || b == 6 || b == 7) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "is written with bits 2, 4 or 8 only, got ", b,
        ": compressed-tensors 0.18 changed how ", b,
        "-bit codes are packed (dense) from earlier releases (padded), so such a file loads "
        "wrongly under one of them; use the gptq or inc format for ",
        b, " bits"));
  }
  if (b != 2 && b != 4 && b != 8) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "supports bits 2, 4 or 8, got ", b));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TensorSpec>> PlanCompressedTensors(std::string_view layer,
                                                              const QuantConfig& config,
                                                              ElemType scale_dtype, int64_t out,
                                                              int64_t in) {
  RTNQ_RETURN_IF_ERROR(CheckCompressedTensorsCompatible(layer, config, out, in));
  const std::string base(layer);
  const int b = config.bits;
  const int64_t groups = Groups(config, in);
  std::vector<TensorSpec> specs = {
      {base + ".weight_packed", ElemType::kI32, {out, Words(in, b)}},
      {base + ".weight_scale", scale_dtype, {out, groups}},
      {base + ".weight_shape", ElemType::kI64, {2}},
  };
  if (config.scheme == Scheme::kAsym) {
    specs.push_back({base + ".weight_zero_point", ElemType::kI32, {Words(out, b), groups}});
  }
  return specs;
}

absl::StatusOr<std::vector<PackedTensor>> PackCompressedTensors(const QuantizedTensor& q,
                                                                std::string_view layer,
                                                                const Engine* engine) {
  RTNQ_RETURN_IF_ERROR(packing::ValidateQuantized(q, layer));
  const int64_t out = q.rows;
  const int64_t in = q.cols;
  RTNQ_RETURN_IF_ERROR(CheckCompressedTensorsCompatible(layer, q.config, out, in));
  if (q.shape.size() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", std::string(layer), ": compressed-tensors pack-quantized stores ",
                     "2-D Linear weights, got shape ", ShapeString(q.shape)));
  }
  RTNQ_ASSIGN_OR_RETURN(const CodeFormat f, packing::CodeFormatFor(q.config, layer));
  RTNQ_RETURN_IF_ERROR(packing::CheckCodeRange(q, layer, f, engine));
  RTNQ_ASSIGN_OR_RETURN(std::vector<TensorSpec> specs,
                        PlanCompressedTensors(layer, q.config, q.dtype, out, in));

  const int b = q.config.bits;
  const int64_t words = Words(in, b);
  PackedTensor packed{specs[0].name, ElemType::kI32, specs[0].shape, {}};
  ResizeInHugePages(packed.data, static_cast<size_t>(out * words) * sizeof(uint32_t));
  uint32_t* const dst = reinterpret_cast<uint32_t*>(packed.data.data());
  const int64_t per_block = RowsPerBlock(in);
  RTNQ_RETURN_IF_ERROR(
      packing::ForBlocks(engine, (out + per_block - 1) / per_block, [&](int64_t blk) {
        for (int64_t r = blk * per_block; r < std::min(out, (blk + 1) * per_block); ++r) {
          const uint8_t* row = q.codes.data() + r * in;
          if (b == 2) PackRow<2>(row, in, f, dst + r * words);
          if (b == 4) PackRow<4>(row, in, f, dst + r * words);
          if (b == 8) PackRow<8>(row, in, f, dst + r * words);
        }
      }));

  std::vector<PackedTensor> result;
  result.push_back(std::move(packed));
  RTNQ_ASSIGN_OR_RETURN(std::vector<uint8_t> scales,
                        packing::StoredScales(q, layer, q.dtype, /*transpose=*/false, engine));
  result.push_back(PackedTensor{specs[1].name, q.dtype, specs[1].shape, std::move(scales)});
  result.push_back(packing::MakeTensor(specs[2].name, ElemType::kI64, specs[2].shape,
                                       std::vector<int64_t>{out, in}));
  if (q.config.scheme == Scheme::kAsym) {
    // Zero points [out, groups] packed along dim 0: column g is one bit stream over the rows.
    const int64_t groups = q.scale_cols();
    std::vector<uint32_t> zp(static_cast<size_t>(Words(out, b) * groups), 0u);
    for (int64_t r = 0; r < out; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        PutBits(zp.data() + g, groups, r * b, b, static_cast<uint32_t>(q.zeros[r * groups + g]));
      }
    }
    result.push_back(packing::MakeTensor(specs[3].name, ElemType::kI32, specs[3].shape, zp));
  }
  return result;
}

absl::StatusOr<QuantizedTensor> UnpackCompressedTensors(absl::Span<const PackedTensor> tensors,
                                                        std::string_view layer,
                                                        const QuantConfig& config) {
  const std::string base(layer);
  RTNQ_ASSIGN_OR_RETURN(const PackedTensor* shape_t,
                        packing::FindPacked(tensors, base + ".weight_shape", ElemType::kI64,
                                            std::vector<int64_t>{2}, 1));
  const std::vector<int64_t> shape = packing::ReadValues<int64_t>(*shape_t);
  const int64_t out = shape[0];
  const int64_t in = shape[1];
  if (out <= 0 || in <= 0 || out > (int64_t{1} << 40) || in > (int64_t{1} << 40)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", base, ".weight_shape: [", out, ", ",
                                                   in, "] is not a weight shape"));
  }
  RTNQ_RETURN_IF_ERROR(CheckCompressedTensorsCompatible(base, config, out, in));
  if (absl::Status s = ValidateConfig(config); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", base, ": ", s.message()));
  }
  RTNQ_ASSIGN_OR_RETURN(const CodeFormat f, packing::CodeFormatFor(config, layer));
  const std::string scale_name = base + ".weight_scale";
  const auto scale_it = std::find_if(tensors.begin(), tensors.end(),
                                     [&](const PackedTensor& t) { return t.name == scale_name; });
  const ElemType scale_dtype = scale_it == tensors.end() ? ElemType::kF32 : scale_it->dtype;
  if (!IsQuantizableFloat(scale_dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", scale_name, ": expected dtype F32, ",
                                                   "F16 or BF16, got ", ElemTypeName(scale_dtype)));
  }
  RTNQ_ASSIGN_OR_RETURN(std::vector<TensorSpec> specs,
                        PlanCompressedTensors(layer, config, scale_dtype, out, in));
  std::vector<const PackedTensor*> found;
  for (const TensorSpec& s : specs) {
    RTNQ_ASSIGN_OR_RETURN(const PackedTensor* t,
                          packing::FindPacked(tensors, s.name, s.dtype, s.shape, s.shape.size()));
    found.push_back(t);
  }

  QuantizedTensor q = packing::UnpackedHeader(base, scale_dtype, config, out, in,
                                              LoaderGroupSize(config.group_size, in));
  const int b = config.bits;
  const int64_t words = Words(in, b);
  const std::vector<uint32_t> packed = packing::ReadValues<uint32_t>(*found[0]);
  const uint32_t shift = f.is_signed ? 1u << (b - 1) : 0u;
  q.codes.resize(out * in);
  for (int64_t r = 0; r < out; ++r) {
    for (int64_t c = 0; c < in; ++c) {
      const uint32_t u = packing::GetBits(packed.data() + r * words, 1, c * b, b);
      q.codes[r * in + c] = packing::ByteOfField((u - shift) & packing::Mask(b), f);
    }
  }
  q.scales = packing::WidenScales(*found[1]);
  if (config.scheme == Scheme::kAsym) {
    const int64_t groups = Groups(config, in);
    const std::vector<uint32_t> zp = packing::ReadValues<uint32_t>(*found[3]);
    q.zeros.resize(out * groups);
    for (int64_t r = 0; r < out; ++r) {
      for (int64_t g = 0; g < groups; ++g) {
        q.zeros[r * groups + g] =
            static_cast<int32_t>(packing::GetBits(zp.data() + g, groups, r * b, b));
      }
    }
  }
  return q;
}

}  // namespace rtnq
