#include "core/layout/gptq.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/engine.h"
#include "core/io/huge_pages.h"
#include "core/kernels/kernel_params.h"
#include "core/layout/pack_bits.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

using packing::Bytes;
using packing::CheckCodeRange;
using packing::CodeFormat;
using packing::CodeFormatFor;
using packing::CodeOfByte;
using packing::FindPacked;
using packing::ForBlocks;
using packing::GetBits;
using packing::MakeTensor;
using packing::Mask;
using packing::PackWord;
using packing::PutBits;
using packing::ReadValues;
using packing::ToHalfChecked;
using packing::ValidateQuantized;

std::string Str(std::string_view s) { return std::string(s); }

// ---- GPTQ bit streams ----

// qweight columns [o0, o1) of an unpermuted B-bit layer (B = 2, 4 or 8): whole words, no
// read-modify-write, written a cache line of columns at a time.
template <int B>
void PackColumns(const uint8_t* codes, int64_t in, int64_t out, int64_t o0, int64_t o1,
                 uint64_t flip, uint32_t* qweight) {
  constexpr int64_t n = 32 / B;
  for (int64_t w = 0; w < in / n; ++w) {
    for (int64_t o = o0; o < o1; ++o)
      qweight[w * out + o] = PackWord<B>(codes + o * in + w * n, flip);
  }
}

absl::Status CheckGptqCompatibleGs(std::string_view name, const QuantConfig& config, int64_t out,
                                   int64_t in, int64_t gs) {
  const std::string prefix = absl::StrCat("tensor ", Str(name), ": GPTQ layout ");
  RTNQ_RETURN_IF_ERROR(packing::CheckIntLinearLayout(prefix, config, out, in, gs));
  const int b = config.bits;
  if (b != 2 && b != 3 && b != 4 && b != 8) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "supports bits 2, 3, 4 or 8, got ", b));
  }
  // 3-bit codes fill whole words only in blocks of 32 codes (3 words).
  const int64_t m = b == 3 ? 32 : 32 / b;
  const std::string why =
      b == 3 ? "32 codes per 3 words at 3 bits" : absl::StrCat("32/bits at ", b, " bits");
  if (in % m != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "needs in_features (", in, ") divisible by ", m, " (", why, ")"));
  }
  if (out % m != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "needs out_features (", out, ") divisible by ", m, " (", why, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidatePerm(const std::vector<int32_t>& perm, int64_t in, std::string_view name) {
  const std::string prefix = absl::StrCat("tensor ", Str(name), ": gptq_perm ");
  if (static_cast<int64_t>(perm.size()) != in) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "has ", perm.size(), " entries, expected in_features = ", in));
  }
  std::vector<bool> seen(in, false);
  for (size_t k = 0; k < perm.size(); ++k) {
    const int32_t c = perm[k];
    if (c < 0 || c >= in) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "entry ", k, " is ", c, ", outside 0..", in - 1));
    }
    if (seen[c]) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, "lists column ", c, " more than once (again at entry ", k, ")"));
    }
    seen[c] = true;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<uint16_t>> BiasToHalf(const TensorInput& bias, int64_t out,
                                                 std::string_view name) {
  const std::string prefix = absl::StrCat("tensor ", Str(name), ": bias ", bias.name, " ");
  if (bias.shape != std::vector<int64_t>{out}) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "has shape ", ShapeString(bias.shape), ", expected [", out, "]"));
  }
  if (!IsQuantizableFloat(bias.dtype)) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "has dtype ", ElemTypeName(bias.dtype),
                                                   ", expected F32, F16 or BF16"));
  }
  const size_t esize = ElemSize(bias.dtype);
  if (bias.data.size() != static_cast<size_t>(out) * esize) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "has ", bias.data.size(), " bytes, expected ", out * esize));
  }
  std::vector<uint16_t> half(out);
  for (int64_t i = 0; i < out; ++i) {
    const uint8_t* p = bias.data.data() + i * esize;
    if (bias.dtype == ElemType::kF16) {
      std::memcpy(&half[i], p, 2);  // already float16: copied bit for bit
      continue;
    }
    float v;
    if (bias.dtype == ElemType::kF32) {
      std::memcpy(&v, p, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, p, 2);
      v = Bf16ToFloat(h);
    }
    RTNQ_ASSIGN_OR_RETURN(half[i], ToHalfChecked(v, name, "bias value", i));
  }
  return half;
}
namespace {

// The GPTQ tensors of one layer, checked for dtype and mutually consistent shapes.
struct GptqTensors {
  int64_t in = 0;
  int64_t out = 0;
  int64_t groups = 0;
  std::vector<uint32_t> qweight;  // [in*bits/32, out]
  std::vector<uint32_t> qzeros;   // [groups, out*bits/32]
  std::vector<uint16_t> scales;   // [groups, out]
  std::vector<int32_t> g_idx;     // [in]
};

// Reads and checks the four tensors. `gs`, when known, fixes the group count (in / gs) and runs
// the layout's divisibility rules; otherwise the group count is scales' first dimension.
absl::StatusOr<GptqTensors> ReadGptq(absl::Span<const PackedTensor> tensors,
                                     std::string_view base_name, int bits,
                                     std::optional<int64_t> gs, const QuantConfig& config) {
  const std::string base = Str(base_name);
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", base, ": GPTQ layout supports bits 2, 3, 4 or 8, got ", bits));
  }
  GptqTensors t;
  RTNQ_ASSIGN_OR_RETURN(const PackedTensor* g_idx,
                        FindPacked(tensors, base + ".g_idx", ElemType::kI32, std::nullopt, 1));
  RTNQ_ASSIGN_OR_RETURN(const PackedTensor* qweight,
                        FindPacked(tensors, base + ".qweight", ElemType::kI32, std::nullopt, 2));
  t.in = g_idx->shape[0];
  t.out = qweight->shape[1];
  if (gs.has_value()) {
    RTNQ_RETURN_IF_ERROR(CheckGptqCompatibleGs(base, config, t.out, t.in, *gs));
    t.groups = t.in / *gs;
  } else if (t.in * bits % 32 != 0 || t.out * bits % 32 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", base, ": in_features ", t.in, " and out_features ", t.out,
                     " must both fill whole 32-bit words at ", bits, " bits"));
  }
  const std::vector<int64_t> qw_shape = {t.in * bits / 32, t.out};
  RTNQ_RETURN_IF_ERROR(
      FindPacked(tensors, base + ".qweight", ElemType::kI32, qw_shape, 2).status());
  RTNQ_ASSIGN_OR_RETURN(
      const PackedTensor* scales,
      FindPacked(
          tensors, base + ".scales", ElemType::kF16,
          gs.has_value() ? std::optional(std::vector<int64_t>{t.groups, t.out}) : std::nullopt, 2));
  if (!gs.has_value()) {
    if (scales->shape[1] != t.out || scales->shape[0] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", base, ".scales: expected shape [",
                                                     "groups > 0, ", t.out, "], got ",
                                                     ShapeString(scales->shape)));
    }
    t.groups = scales->shape[0];
  }
  RTNQ_ASSIGN_OR_RETURN(const PackedTensor* qzeros,
                        FindPacked(tensors, base + ".qzeros", ElemType::kI32,
                                   std::vector<int64_t>{t.groups, t.out * bits / 32}, 2));
  t.qweight = ReadValues<uint32_t>(*qweight);
  t.qzeros = ReadValues<uint32_t>(*qzeros);
  t.scales = ReadValues<uint16_t>(*scales);
  t.g_idx = ReadValues<int32_t>(*g_idx);
  for (int64_t c = 0; c < t.in; ++c) {
    if (t.g_idx[c] < 0 || t.g_idx[c] >= t.groups) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", base, ".g_idx: entry ", c, " is ",
                                                     t.g_idx[c], ", outside 0..", t.groups - 1));
    }
  }
  return t;
}

// Zero point of group g, output o as loaders read it: v1 adds 1 without masking.
int32_t LoadedZero(const GptqTensors& t, int bits, GptqFormat format, int64_t g, int64_t o) {
  const int64_t zw = t.out * bits / 32;
  const uint32_t stored = GetBits(t.qzeros.data() + g * zw, 1, o * bits, bits);
  return static_cast<int32_t>(stored) + (format == GptqFormat::kV1 ? 1 : 0);
}

}  // namespace

const std::string& GptqFormatName(GptqFormat f) {
  static const std::string kV1 = "gptq";
  static const std::string kV2 = "gptq_v2";
  return f == GptqFormat::kV1 ? kV1 : kV2;
}

absl::StatusOr<GptqFormat> ParseGptqFormat(std::string_view s) {
  if (s == "gptq") return GptqFormat::kV1;
  if (s == "gptq_v2") return GptqFormat::kV2;
  return absl::InvalidArgumentError(
      absl::StrCat("checkpoint_format must be \"gptq\" or ", "\"gptq_v2\", got \"", Str(s), "\""));
}

absl::Status CheckGptqCompatible(std::string_view name, const QuantConfig& config,
                                 int64_t out_features, int64_t in_features) {
  // Unlike the quantizer, loaders do not shrink a group size larger than in_features.
  const int64_t gs = LoaderGroupSize(config.group_size, in_features);
  return CheckGptqCompatibleGs(name, config, out_features, in_features, gs);
}

// PackGptq in `engine`'s arena, or serially when it is null.
static absl::StatusOr<std::vector<PackedTensor>> PackGptqWith(const QuantizedTensor& q,
                                                              std::string_view base_name,
                                                              const GptqPackOptions& options,
                                                              const Engine* engine) {
  RTNQ_RETURN_IF_ERROR(ValidateQuantized(q, base_name));
  const int64_t out = q.rows;
  const int64_t in = q.cols;
  const int64_t gs = q.group_size;
  // The checkpoint's group_size is the configured one, which loaders check against in_features.
  RTNQ_RETURN_IF_ERROR(CheckGptqCompatible(base_name, q.config, out, in));
  if (gs != LoaderGroupSize(q.config.group_size, in)) {
    return absl::InternalError(absl::StrCat("tensor ", Str(base_name), ": effective group size ",
                                            gs, " disagrees with group_size ",
                                            q.config.group_size));
  }
  const bool perm = !options.perm.empty();
  if (perm) RTNQ_RETURN_IF_ERROR(ValidatePerm(options.perm, in, base_name));
  RTNQ_ASSIGN_OR_RETURN(const CodeFormat f, CodeFormatFor(q.config, base_name));
  RTNQ_RETURN_IF_ERROR(CheckCodeRange(q, base_name, f, engine));

  const std::string base = Str(base_name);
  const int b = q.config.bits;
  const bool sym = q.config.scheme == Scheme::kSym;
  const GptqFormat format = options.format.value_or(DefaultGptqFormat({q.config}));
  const int64_t groups = in / gs;
  const int32_t sym_zero = 1 << (b - 1);

  // Zero points, [groups, out] as GPTQ orders them.
  std::vector<int32_t> zp(groups * out);
  int64_t zero_groups = 0;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      zp[g * out + o] = sym ? sym_zero : q.zeros[o * groups + g];
      if (zp[g * out + o] == 0) ++zero_groups;
    }
  }
  if (format == GptqFormat::kV1 && zero_groups > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", base, ": ", zero_groups, " of ", groups * out,
        " groups have zero point 0, which checkpoint_format \"gptq\" (v1) cannot store (it "
        "stores zero_point - 1, which wraps and loads wrongly); use \"gptq_v2\""));
  }

  // Column c of the checkpoint is column inv[c] of the quantized (permuted) matrix.
  std::vector<int64_t> inv(in);
  std::vector<int32_t> g_idx(in);
  for (int64_t k = 0; k < in; ++k) {
    const int64_t c = perm ? options.perm[k] : k;
    inv[c] = k;
    g_idx[c] = static_cast<int32_t>(k / gs);
  }

  // Written in place in the output tensor (no copy of the largest buffer); zeroed for PutBits.
  PackedTensor qweight_tensor{base + ".qweight", ElemType::kI32, {in * b / 32, out}, {}};
  ResizeInHugePages(qweight_tensor.data, in * b / 32 * out * sizeof(uint32_t));
  uint32_t* const qweight = reinterpret_cast<uint32_t*>(qweight_tensor.data.data());
  const uint32_t shift = sym ? static_cast<uint32_t>(sym_zero) : 0u;
  const uint64_t flip = sym ? Bytes(static_cast<uint64_t>(sym_zero)) : 0u;
  // Blocks of output columns (a cache line of qweight words per word row). A block writes only
  // its own columns, so blocks run in parallel and the bytes do not depend on the thread count.
  constexpr int64_t kColumnsPerBlock = 16;
  RTNQ_RETURN_IF_ERROR(
      ForBlocks(engine, (out + kColumnsPerBlock - 1) / kColumnsPerBlock, [&](int64_t blk) {
        const int64_t o0 = blk * kColumnsPerBlock, o1 = std::min(out, o0 + kColumnsPerBlock);
        const uint8_t* codes = q.codes.data();
        if (!perm && b != 3) {
          if (b == 2) PackColumns<2>(codes, in, out, o0, o1, flip, qweight);
          if (b == 4) PackColumns<4>(codes, in, out, o0, o1, flip, qweight);
          if (b == 8) PackColumns<8>(codes, in, out, o0, o1, flip, qweight);
          return;
        }
        // 3 bits (codes across word edges) or desc_act (permuted columns): field by field.
        for (int64_t o = o0; o < o1; ++o) {
          const uint8_t* row = codes + o * in;
          for (int64_t c = 0; c < in; ++c) {
            const uint32_t u = static_cast<uint32_t>(CodeOfByte(row[inv[c]], f)) + shift;
            PutBits(qweight + o, out, c * b, b, u & Mask(b));
          }
        }
      }));

  const int64_t zw = out * b / 32;
  std::vector<uint32_t> qzeros(groups * zw, 0u);
  const int32_t zbias = format == GptqFormat::kV1 ? 1 : 0;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      const uint32_t stored = static_cast<uint32_t>(zp[g * out + o] - zbias) & Mask(b);
      PutBits(qzeros.data() + g * zw, 1, o * b, b, stored);
    }
  }

  RTNQ_ASSIGN_OR_RETURN(
      std::vector<uint8_t> scales,
      packing::StoredScales(q, base_name, ElemType::kF16, /*transpose=*/true, engine));

  std::vector<PackedTensor> result;
  result.push_back(std::move(qweight_tensor));
  result.push_back(MakeTensor(base + ".qzeros", ElemType::kI32, {groups, zw}, qzeros));
  result.push_back(
      PackedTensor{base + ".scales", ElemType::kF16, {groups, out}, std::move(scales)});
  result.push_back(MakeTensor(base + ".g_idx", ElemType::kI32, {in}, g_idx));
  if (options.bias != nullptr) {
    RTNQ_ASSIGN_OR_RETURN(std::vector<uint16_t> bias, BiasToHalf(*options.bias, out, base_name));
    result.push_back(MakeTensor(base + ".bias", ElemType::kF16, {out}, bias));
  }
  return result;
}

absl::StatusOr<std::vector<PackedTensor>> PackGptq(const QuantizedTensor& q,
                                                   std::string_view base_name,
                                                   const GptqPackOptions& options) {
  return PackGptqWith(q, base_name, options, nullptr);
}

absl::StatusOr<std::vector<PackedTensor>> PackGptq(const QuantizedTensor& q,
                                                   std::string_view base_name,
                                                   const GptqPackOptions& options,
                                                   const Engine& engine) {
  return PackGptqWith(q, base_name, options, &engine);
}

absl::StatusOr<GptqUnpacked> UnpackGptq(absl::Span<const PackedTensor> tensors,
                                        std::string_view base_name,
                                        const GptqUnpackOptions& options) {
  const std::string base = Str(base_name);
  QuantConfig cfg;
  cfg.dtype = QuantDtype::kInt;
  cfg.bits = options.bits;
  cfg.scheme = options.sym ? Scheme::kSym : Scheme::kAsym;
  cfg.group_size = options.group_size;
  cfg.group_dim = 1;
  if (options.group_size == 0 || options.group_size < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", base, ": group_size must be > 0 or -1, got ", options.group_size));
  }
  // The group size is only known once g_idx gives in_features; read it first for -1.
  int64_t gs = options.group_size;
  if (gs == -1) {
    RTNQ_ASSIGN_OR_RETURN(const PackedTensor* g_idx,
                          FindPacked(tensors, base + ".g_idx", ElemType::kI32, std::nullopt, 1));
    gs = g_idx->shape[0];
  }
  RTNQ_ASSIGN_OR_RETURN(GptqTensors t, ReadGptq(tensors, base_name, options.bits, gs, cfg));
  const int b = options.bits;
  const int64_t in = t.in;
  const int64_t out = t.out;
  const int64_t groups = t.groups;

  GptqUnpacked result;
  if (!options.perm.empty()) {
    RTNQ_RETURN_IF_ERROR(ValidatePerm(options.perm, in, base_name));
    for (int64_t k = 0; k < in; ++k) {
      const int32_t c = options.perm[k];
      if (t.g_idx[c] != k / gs) {
        return absl::InvalidArgumentError(
            absl::StrCat("tensor ", base, ".g_idx: column ", c, " is in group ", t.g_idx[c],
                         " but the permutation puts it in group ", k / gs));
      }
    }
    result.perm = options.perm;
  } else {
    std::vector<int64_t> count(groups, 0);
    for (int32_t g : t.g_idx) ++count[g];
    for (int64_t g = 0; g < groups; ++g) {
      if (count[g] != gs) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tensor ", base, ".g_idx: group ", g, " has ", count[g], " columns, expected ", gs));
      }
    }
    std::vector<int64_t> next(groups);
    for (int64_t g = 0; g < groups; ++g) next[g] = g * gs;
    result.perm.resize(in);
    bool identity = true;
    for (int64_t c = 0; c < in; ++c) {
      const int64_t k = next[t.g_idx[c]]++;
      result.perm[k] = static_cast<int32_t>(c);
      identity = identity && k == c;
    }
    if (identity) result.perm.clear();
  }

  result.q = packing::UnpackedHeader(base, ElemType::kF16, cfg, out, in, gs);
  QuantizedTensor& q = result.q;

  // zp[o, g], as loaders read it.
  std::vector<int32_t> zp(out * groups);
  const int32_t sym_zero = 1 << (b - 1);
  int64_t bad_sym = 0;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) {
      zp[o * groups + g] = LoadedZero(t, b, options.format, g, o);
      if (zp[o * groups + g] != sym_zero) ++bad_sym;
    }
  }
  if (options.sym && bad_sym > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", base, ".qzeros: ", bad_sym, " of ", groups * out,
        " groups have a zero point other than ", sym_zero, ", so the layer is not sym (as read ",
        "with checkpoint_format \"", GptqFormatName(options.format), "\")"));
  }
  if (!options.sym) q.zeros = zp;

  q.codes.resize(out * in);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t k = 0; k < in; ++k) {
      const int64_t c = result.perm.empty() ? k : result.perm[k];
      const int32_t u = static_cast<int32_t>(GetBits(t.qweight.data() + o, out, c * b, b));
      q.codes[o * in + k] = static_cast<uint8_t>(options.sym ? u - sym_zero : u);
    }
  }
  q.scales.resize(out * groups);
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t o = 0; o < out; ++o) q.scales[o * groups + g] = HalfToFloat(t.scales[g * out + o]);
  }
  return result;
}

absl::StatusOr<std::vector<float>> DequantizeGptq(absl::Span<const PackedTensor> tensors,
                                                  std::string_view base_name, int bits,
                                                  GptqFormat format) {
  RTNQ_ASSIGN_OR_RETURN(GptqTensors t,
                        ReadGptq(tensors, base_name, bits, std::nullopt, QuantConfig{}));
  std::vector<float> w(t.out * t.in);
  for (int64_t o = 0; o < t.out; ++o) {
    for (int64_t c = 0; c < t.in; ++c) {
      const int64_t g = t.g_idx[c];
      const int32_t qv = static_cast<int32_t>(GetBits(t.qweight.data() + o, t.out, c * bits, bits));
      const int32_t z = LoadedZero(t, bits, format, g, o);
      w[o * t.in + c] = static_cast<float>(qv - z) * HalfToFloat(t.scales[g * t.out + o]);
    }
  }
  return w;
}

}  // namespace rtnq
