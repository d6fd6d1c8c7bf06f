#include "core/layout/pack_bits.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::packing {
namespace {

std::string Str(std::string_view s) { return std::string(s); }

// Codes scanned per block by CodesInRange.
constexpr int64_t kRangeBlock = int64_t{1} << 20;

// True when every code byte lies in f's range: a branch-free scan the compiler vectorizes; the
// exact first offender is only looked for (by CheckCodeRange) when this fails.
bool CodesInRange(const std::vector<uint8_t>& codes, const CodeFormat& f, const Engine* engine) {
  const int64_t n = static_cast<int64_t>(codes.size());
  const int64_t blocks = (n + kRangeBlock - 1) / kRangeBlock;
  std::atomic<bool> bad{false};
  const absl::Status s = ForBlocks(engine, blocks, [&](int64_t blk) {
    const uint8_t* c = codes.data() + blk * kRangeBlock;
    const int64_t len = std::min(kRangeBlock, n - blk * kRangeBlock);
    // Byte arithmetic modulo 256: code - lo lies in 0..hi-lo exactly when the code is in range
    // (lo is negative for signed codes, whose bytes are two's complement).
    const uint8_t lo = static_cast<uint8_t>(f.lo);
    uint8_t worst = 0;
    for (int64_t i = 0; i < len; ++i) worst = std::max(worst, static_cast<uint8_t>(c[i] - lo));
    if (worst > f.hi - f.lo) bad.store(true, std::memory_order_relaxed);
  });
  return s.ok() && !bad.load();
}

}  // namespace

absl::StatusOr<const PackedTensor*> FindPacked(absl::Span<const PackedTensor> tensors,
                                               const std::string& name, ElemType dtype,
                                               std::optional<std::vector<int64_t>> shape,
                                               size_t rank) {
  const PackedTensor* found = nullptr;
  for (const PackedTensor& t : tensors) {
    if (t.name == name) found = &t;
  }
  if (found == nullptr) return absl::InvalidArgumentError(absl::StrCat("missing tensor ", name));
  if (found->dtype != dtype) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", name, ": expected dtype ",
                                                   ElemTypeName(dtype), ", got ",
                                                   ElemTypeName(found->dtype)));
  }
  if (shape.has_value() ? found->shape != *shape : found->shape.size() != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", name, ": expected shape ",
                     shape.has_value() ? ShapeString(*shape) : absl::StrCat("of rank ", rank),
                     ", got ", ShapeString(found->shape)));
  }
  int64_t elements = 1;
  for (int64_t d : found->shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", name, ": negative dimension in shape ", ShapeString(found->shape)));
    }
    elements *= d;
  }
  const uint64_t expect = static_cast<uint64_t>(elements) * ElemSize(dtype);
  if (found->data.size() != expect) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", name, ": ", found->data.size(), " bytes, expected ", expect,
                     " for shape ", ShapeString(found->shape), " of ", ElemTypeName(dtype)));
  }
  return found;
}

absl::StatusOr<CodeFormat> CodeFormatFor(const QuantConfig& cfg, std::string_view name) {
  if (cfg.is_float4()) {
    if (cfg.bits != 4) {
      return absl::InvalidArgumentError(absl::StrCat("tensor ", Str(name), ": dtype ",
                                                     QuantDtypeName(cfg.dtype),
                                                     " needs bits 4, got ", cfg.bits));
    }
    return CodeFormat{4, true, -8, 7};
  }
  if (cfg.dtype != QuantDtype::kInt) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Str(name), ": dtype ", QuantDtypeName(cfg.dtype), " has no codes"));
  }
  if (cfg.bits < 1 || cfg.bits > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", Str(name), ": bits must be in 1..8, got ", cfg.bits));
  }
  const int b = cfg.bits;
  if (cfg.scheme == Scheme::kAsym) return CodeFormat{b, false, 0, (1 << b) - 1};
  // The reference's 1-bit sym uses codes {0, 1}; sign-extending 1 would turn it into -1.
  if (b == 1) return CodeFormat{1, false, 0, 1};
  return CodeFormat{b, true, -(1 << (b - 1)), (1 << (b - 1)) - 1};
}

absl::Status ValidateQuantized(const QuantizedTensor& q, std::string_view name) {
  if (!q.quantized) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Str(name), " was not quantized (",
                                                   q.skip_reason, "): nothing to pack"));
  }
  if (q.rows <= 0 || q.cols <= 0 || q.group_size <= 0) {
    return absl::InternalError(absl::StrCat("tensor ", Str(name), ": bad quantized view rows ",
                                            q.rows, ", cols ", q.cols, ", group size ",
                                            q.group_size));
  }
  if (q.config.group_dim != 0 && q.config.group_dim != 1) {
    return absl::InternalError(
        absl::StrCat("tensor ", Str(name), ": group_dim ", q.config.group_dim));
  }
  const uint64_t codes = static_cast<uint64_t>(q.rows) * q.cols;
  const uint64_t scales = static_cast<uint64_t>(q.scale_rows()) * q.scale_cols();
  const uint64_t zeros = IsIntAsym(q.config) ? scales : 0;
  if (q.codes.size() != codes || q.scales.size() != scales || q.zeros.size() != zeros) {
    return absl::InternalError(absl::StrCat(
        "tensor ", Str(name), ": ", q.codes.size(), " codes, ", q.scales.size(), " scales, ",
        q.zeros.size(), " zero points; expected ", codes, ", ", scales, ", ", zeros));
  }
  return absl::OkStatus();
}

QuantizedTensor UnpackedHeader(std::string name, ElemType scale_dtype, const QuantConfig& config,
                               int64_t rows, int64_t cols, int64_t group_size) {
  QuantizedTensor q;
  q.name = std::move(name);
  q.dtype = scale_dtype;
  q.shape = {rows, cols};
  q.quantized = true;
  q.config = config;
  q.rows = rows;
  q.cols = cols;
  q.group_size = group_size;
  return q;
}

absl::Status ForBlocks(const Engine* engine, int64_t blocks,
                       const std::function<void(int64_t)>& fn) {
  if (engine != nullptr) return engine->ParallelFor(blocks, fn);
  for (int64_t b = 0; b < blocks; ++b) fn(b);
  return absl::OkStatus();
}

absl::Status CheckCodeRange(const QuantizedTensor& q, std::string_view name, const CodeFormat& f,
                            const Engine* engine) {
  // The fast scan passes for every tensor the quantizer produced; the loop names the offender.
  const bool codes_ok = CodesInRange(q.codes, f, engine);
  for (size_t i = 0; !codes_ok && i < q.codes.size(); ++i) {
    const int v = CodeOfByte(q.codes[i], f);
    if (v < f.lo || v > f.hi) {
      return absl::InternalError(absl::StrCat("tensor ", Str(name), ": code ", v, " at element ", i,
                                              " is outside ", f.lo, "..", f.hi));
    }
  }
  const int zmax = (1 << f.bits) - 1;
  for (size_t i = 0; i < q.zeros.size(); ++i) {
    if (q.zeros[i] < 0 || q.zeros[i] > zmax) {
      return absl::InternalError(absl::StrCat("tensor ", Str(name), ": zero point ", q.zeros[i],
                                              " at group ", i, " is outside 0..", zmax));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> ToHalfChecked(float v, std::string_view name, std::string_view what,
                                       int64_t index) {
  const uint16_t h = FloatToHalf(v);
  if (std::isfinite(v) && !std::isfinite(HalfToFloat(h))) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Str(name), ": ", Str(what), " ", v,
                                                   " at index ", index,
                                                   " overflows float16 (max 65504)"));
  }
  return h;
}

absl::Status CheckIntLinearLayout(std::string_view prefix_view, const QuantConfig& config,
                                  int64_t out, int64_t in, int64_t gs) {
  const std::string prefix(prefix_view);
  if (config.dtype != QuantDtype::kInt) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "needs dtype int, got ", QuantDtypeName(config.dtype),
        " (nf4/fp4 codes and their table are stored by the inc and fake formats only)"));
  }
  if (config.group_dim != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "needs group_dim 1, got ", config.group_dim,
        " (loaders group along the input dimension; the inc format stores group_dim 0)"));
  }
  if (config.double_quant()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix,
                     "cannot store double-quantized scales (double_quant_dtype int); turn it off "
                     "or use the inc format"));
  }
  if (out <= 0 || in <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "needs a non-empty weight, got [", out, ", ", in, "]"));
  }
  if (gs <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "needs group_size > 0 or -1, got ", config.group_size));
  }
  if (in % gs != 0) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "needs in_features (", in,
                                                   ") divisible by the group size (", gs, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> StoredScales(const QuantizedTensor& q, std::string_view name,
                                                  ElemType dtype, bool transpose,
                                                  const Engine* engine) {
  const int64_t rows = q.scale_rows();
  const int64_t groups = q.scale_cols();
  if (dtype != ElemType::kF32 && dtype != ElemType::kF16 && dtype != ElemType::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", Str(name), ": scales cannot be ",
                                                   "stored as ", ElemTypeName(dtype)));
  }
  const size_t esize = ElemSize(dtype);
  std::vector<uint8_t> out(static_cast<size_t>(rows * groups) * esize);
  // One block per output row; the first error in output order wins, as serially.
  const int64_t outer = transpose ? groups : rows;
  const int64_t inner = transpose ? rows : groups;
  std::vector<absl::Status> errors(outer);
  RTNQ_RETURN_IF_ERROR(ForBlocks(engine, outer, [&](int64_t i) {
    for (int64_t j = 0; j < inner; ++j) {
      const int64_t src = transpose ? j * groups + i : i * groups + j;
      const float s = q.scales[src];
      if (!std::isfinite(s)) {
        errors[i] = absl::InternalError(absl::StrCat("tensor ", Str(name), ": scale ", s,
                                                     " at row ", src / groups, " group ",
                                                     src % groups, " is not finite"));
        return;
      }
      uint8_t* dst = out.data() + static_cast<size_t>(i * inner + j) * esize;
      if (dtype == ElemType::kF32) {
        std::memcpy(dst, &s, 4);
        continue;
      }
      if (dtype == ElemType::kF16) {
        const uint16_t h = FloatToHalf(s);
        if ((h & 0x7c00u) == 0x7c00u) {  // overflowed (s is finite); ToHalfChecked words it
          errors[i] = ToHalfChecked(s, name, "scale", src).status();
          return;
        }
        std::memcpy(dst, &h, 2);
        continue;
      }
      const uint16_t b = FloatToBf16(s);
      if ((b & 0x7f80u) == 0x7f80u) {
        errors[i] = absl::InvalidArgumentError(absl::StrCat(
            "tensor ", Str(name), ": scale ", s, " at index ", src, " overflows bfloat16"));
        return;
      }
      std::memcpy(dst, &b, 2);
    }
  }));
  for (const absl::Status& e : errors) RTNQ_RETURN_IF_ERROR(e);
  return out;
}

std::vector<float> WidenScales(const PackedTensor& t) {
  if (t.dtype == ElemType::kF32) return ReadValues<float>(t);
  const std::vector<uint16_t> bits = ReadValues<uint16_t>(t);
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    out[i] = t.dtype == ElemType::kF16 ? HalfToFloat(bits[i]) : Bf16ToFloat(bits[i]);
  }
  return out;
}

}  // namespace rtnq::packing
