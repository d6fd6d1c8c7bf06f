#include "core/layout/inc.h"

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

namespace rtnq {
namespace {

using packing::ByteOfField;
using packing::CheckCodeRange;
using packing::CodeFormat;
using packing::CodeFormatFor;
using packing::CodeOfByte;
using packing::FindPacked;
using packing::ForBlocks;
using packing::MakeTensor;
using packing::Mask;
using packing::ReadValues;
using packing::ValidateQuantized;

std::string Str(std::string_view s) { return std::string(s); }

// ---- INC words ----

std::vector<int64_t> IncWordShape(int64_t rows, int64_t cols, int bits, int compression_dim) {
  const int64_t n = IncPackFactor(bits);
  if (compression_dim == 1) return {rows, (cols + n - 1) / n};
  return {(rows + n - 1) / n, cols};
}

// Packs get(r, c) (any int; masked here) for a [rows, cols] matrix along `compression_dim`, in
// blocks of word rows (each block owns its words: same bytes serially or in `engine`'s arena).
template <typename Get>
absl::StatusOr<std::vector<uint32_t>> PackIncWords(int64_t rows, int64_t cols, int bits,
                                                   int compression_dim, const Engine* engine,
                                                   Get get) {
  const int64_t n = IncPackFactor(bits);
  const uint32_t mask = Mask(bits);
  const std::vector<int64_t> ws = IncWordShape(rows, cols, bits, compression_dim);
  std::vector<uint32_t> words(ws[0] * ws[1], 0u);
  const int64_t rows_per_word_row = compression_dim == 1 ? 1 : n;
  const int64_t word_rows_per_block =
      std::max<int64_t>(1, (int64_t{1} << 16) / (cols * rows_per_word_row));
  const int64_t blocks = (ws[0] + word_rows_per_block - 1) / word_rows_per_block;
  RTNQ_RETURN_IF_ERROR(ForBlocks(engine, blocks, [&](int64_t blk) {
    const int64_t r0 = blk * word_rows_per_block * rows_per_word_row;
    const int64_t r1 = std::min(rows, r0 + word_rows_per_block * rows_per_word_row);
    for (int64_t r = r0; r < r1; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const uint32_t v = static_cast<uint32_t>(get(r, c)) & mask;
        if (compression_dim == 1) {
          words[r * ws[1] + c / n] |= v << (bits * (c % n));
        } else {
          words[(r / n) * cols + c] |= v << (bits * (r % n));
        }
      }
    }
  }));
  return words;
}

// Calls set(r, c, field) with each `bits`-bit field of a [rows, cols] matrix packed by
// PackIncWords.
template <typename Set>
void UnpackIncWords(const std::vector<uint32_t>& words, int64_t rows, int64_t cols, int bits,
                    int compression_dim, Set set) {
  const int64_t n = IncPackFactor(bits);
  const uint32_t mask = Mask(bits);
  const std::vector<int64_t> ws = IncWordShape(rows, cols, bits, compression_dim);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const uint32_t w =
          compression_dim == 1 ? words[r * ws[1] + c / n] : words[(r / n) * cols + c];
      const int shift = static_cast<int>(compression_dim == 1 ? bits * (c % n) : bits * (r % n));
      set(r, c, (w >> shift) & mask);
    }
  }
}

absl::Status CheckCompressionDim(int compression_dim, std::string_view name) {
  if (compression_dim != 0 && compression_dim != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor ", Str(name), ": compression_dim must be 0 or 1, got ", compression_dim));
  }
  return absl::OkStatus();
}

}  // namespace

// PackInc in `engine`'s arena, or serially when it is null.
static absl::StatusOr<std::vector<PackedTensor>> PackIncWith(const QuantizedTensor& q,
                                                             std::string_view base_name,
                                                             int compression_dim,
                                                             const Engine* engine) {
  RTNQ_RETURN_IF_ERROR(CheckCompressionDim(compression_dim, base_name));
  RTNQ_RETURN_IF_ERROR(ValidateQuantized(q, base_name));
  RTNQ_ASSIGN_OR_RETURN(const CodeFormat f, CodeFormatFor(q.config, base_name));
  RTNQ_RETURN_IF_ERROR(CheckCodeRange(q, base_name, f, engine));

  const std::string base = Str(base_name);
  std::vector<PackedTensor> out;
  RTNQ_ASSIGN_OR_RETURN(
      const std::vector<uint32_t> qweight,
      PackIncWords(q.rows, q.cols, f.bits, compression_dim, engine,
                   [&](int64_t r, int64_t c) { return CodeOfByte(q.codes[r * q.cols + c], f); }));
  out.push_back(MakeTensor(base + ".qweight", ElemType::kI32,
                           IncWordShape(q.rows, q.cols, f.bits, compression_dim), qweight));
  const int64_t sr = q.scale_rows();
  const int64_t sc = q.scale_cols();
  out.push_back(MakeTensor(base + ".scales", ElemType::kF32, {sr, sc}, q.scales));
  if (IsIntAsym(q.config)) {
    RTNQ_ASSIGN_OR_RETURN(const std::vector<uint32_t> qzeros,
                          PackIncWords(sr, sc, f.bits, compression_dim, engine,
                                       [&](int64_t r, int64_t c) { return q.zeros[r * sc + c]; }));
    out.push_back(MakeTensor(base + ".qzeros", ElemType::kI32,
                             IncWordShape(sr, sc, f.bits, compression_dim), qzeros));
  }
  return out;
}

absl::StatusOr<std::vector<PackedTensor>> PackInc(const QuantizedTensor& q,
                                                  std::string_view base_name, int compression_dim) {
  return PackIncWith(q, base_name, compression_dim, nullptr);
}

absl::StatusOr<std::vector<PackedTensor>> PackInc(const QuantizedTensor& q,
                                                  std::string_view base_name, int compression_dim,
                                                  const Engine& engine) {
  return PackIncWith(q, base_name, compression_dim, &engine);
}

absl::StatusOr<QuantizedTensor> UnpackInc(absl::Span<const PackedTensor> tensors,
                                          std::string_view base_name, const QuantConfig& config,
                                          int64_t rows, int64_t cols, int compression_dim) {
  RTNQ_RETURN_IF_ERROR(CheckCompressionDim(compression_dim, base_name));
  const std::string base = Str(base_name);
  if (rows <= 0 || cols <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor ", base, ": weight shape [", rows, ", ", cols, "] is empty"));
  }
  if (absl::Status s = ValidateConfig(config); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("tensor ", base, ": ", s.message()));
  }
  RTNQ_ASSIGN_OR_RETURN(const CodeFormat f, CodeFormatFor(config, base_name));

  QuantizedTensor q = packing::UnpackedHeader(base, ElemType::kF32, config, rows, cols,
                                              EffectiveGroupSize(config, rows, cols));
  const int64_t sr = q.scale_rows();
  const int64_t sc = q.scale_cols();

  RTNQ_ASSIGN_OR_RETURN(const PackedTensor* qweight,
                        FindPacked(tensors, base + ".qweight", ElemType::kI32,
                                   IncWordShape(rows, cols, f.bits, compression_dim), 2));
  q.codes.resize(rows * cols);
  UnpackIncWords(
      ReadValues<uint32_t>(*qweight), rows, cols, f.bits, compression_dim,
      [&](int64_t r, int64_t c, uint32_t v) { q.codes[r * cols + c] = ByteOfField(v, f); });

  RTNQ_ASSIGN_OR_RETURN(
      const PackedTensor* scales,
      FindPacked(tensors, base + ".scales", ElemType::kF32, std::vector<int64_t>{sr, sc}, 2));
  q.scales = ReadValues<float>(*scales);

  if (IsIntAsym(config)) {
    RTNQ_ASSIGN_OR_RETURN(const PackedTensor* qzeros,
                          FindPacked(tensors, base + ".qzeros", ElemType::kI32,
                                     IncWordShape(sr, sc, f.bits, compression_dim), 2));
    q.zeros.resize(sr * sc);
    UnpackIncWords(
        ReadValues<uint32_t>(*qzeros), sr, sc, f.bits, compression_dim,
        [&](int64_t r, int64_t c, uint32_t v) { q.zeros[r * sc + c] = static_cast<int32_t>(v); });
  }
  return q;
}

}  // namespace rtnq
