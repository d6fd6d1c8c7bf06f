// INC's packed layout (spec "Packing (return_int)"): int32 words of codes along either
// dimension, float32 scales, packed zero points; and its exact inverse.
#pragma once

#include <cstdint>
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

namespace rtnq {

/// Codes per int32 word in the INC layout: 32 / bits, so 3, 5, 6 and 7 bits leave the high bits
/// of every word unused, as INC does.
inline int IncPackFactor(int bits) { return 32 / bits; }

/// Packs `q` in INC's layout as <base>.qweight (I32), <base>.scales (F32, the scale matrix as it
/// is, [scale_rows, scale_cols]) and, for int asym only, <base>.qzeros (I32). Code e of a word
/// sits at bit offset bits*e, masked to `bits` bits (two's complement for signed codes; nf4/fp4
/// codes as 4-bit two's complement, so the checkpoint must record the dtype).
///   compression_dim 1: qweight [rows, ceil(cols/n)], qzeros [scale_rows, ceil(scale_cols/n)].
///   compression_dim 0: qweight [ceil(rows/n), cols], qzeros [ceil(scale_rows/n), scale_cols]:
///   zero points are packed along the first dimension too, mirroring qweight (INC's
///   WeightOnlyLinear does the same).
/// Unlike INC, group_dim 0 results pack (the scale matrix is then [ceil(rows/gs), cols]).
/// InvalidArgument for an unquantized tensor or compression_dim not 0/1; Internal when `q`'s
/// sizes or code ranges break QuantizedTensor's invariants.
absl::StatusOr<std::vector<PackedTensor>> PackInc(const QuantizedTensor& q,
                                                  std::string_view base_name,
                                                  int compression_dim = 1);
/// The same, run over blocks of rows in `engine`'s arena (same bytes for any thread count).
absl::StatusOr<std::vector<PackedTensor>> PackInc(const QuantizedTensor& q,
                                                  std::string_view base_name, int compression_dim,
                                                  const Engine& engine);

/// Inverse of PackInc: reads <base>.qweight, <base>.scales and (int asym) <base>.qzeros from
/// `tensors` for a [rows, cols] weight quantized with `config` (dtype, bits, scheme, group_size
/// as configured, group_dim). Signed codes are sign-extended, except 1-bit sym whose codes are
/// {0, 1} (INC's own recover() would read 1 as -1). InvalidArgument for a missing tensor, a wrong
/// dtype, or a shape other than the expected one (the message gives both).
absl::StatusOr<QuantizedTensor> UnpackInc(absl::Span<const PackedTensor> tensors,
                                          std::string_view base_name, const QuantConfig& config,
                                          int64_t rows, int64_t cols, int compression_dim = 1);
}  // namespace rtnq
