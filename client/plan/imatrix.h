// llama.cpp importance matrices (`llama-imatrix` output): the legacy binary `.dat` format and the
// GGUF format, read independently of llama.cpp. Each entry holds, per weight matrix (per expert
// for stacked MoE weights), the mean squared activation E[x_j^2] of every input column j: how
// much an error in column j of the weight costs at the layer's output.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace rtnq::client {

/// One entry, already normalised as llama-quantize reads it.
struct ImatrixEntry {
  /// Values per matrix: the weight's input dimension. Legacy files do not record it (0): the
  /// caller divides the values by the tensor's input dimension.
  int64_t n_per_row = 0;
  /// Matrices (experts of a stacked MoE weight), 1 for a plain weight; 0 when unknown (legacy).
  int64_t n_mat = 0;
  /// Matrix-major importances (matrix m, column j at m * n_per_row + j): legacy values / ncall
  /// (as stored when ncall is 0); GGUF in_sum2 / counts per matrix, 1 where a matrix's count is
  /// 0 (no token reached that expert). Finite and >= 0.
  std::vector<float> values;
};

struct Imatrix {
  std::string format;                           ///< "dat" or "gguf"
  std::map<std::string, ImatrixEntry> entries;  ///< by llama.cpp tensor name (blk.0.attn_q.weight)
  std::vector<std::string> datasets;            ///< calibration files named in the file
  int64_t chunks = 0;                           ///< chunks processed, when recorded
};

/// Largest importance file read.
inline constexpr uint64_t kMaxImatrixBytes = uint64_t{8} << 30;

/// Reads `path`: GGUF when it starts with the magic "GGUF", else the legacy format.
absl::StatusOr<Imatrix> ReadImatrix(const std::string& path);

/// Parses a whole file held in memory; `label` names it in errors. Every count, length and
/// offset is checked against the bytes present, so any input costs time linear in its size.
/// InvalidArgument naming the file, the entry (or its index) and the rule: truncated data,
/// lengths past the end, trailing bytes, duplicate entries, negative or non-finite values,
/// GGUF versions other than 2 and 3, nested arrays, unsupported tensor types for the
/// `.in_sum2`/`.counts` tensors, shapes that do not pair up, or a GGUF file that is a model
/// rather than an importance matrix (general.type).
absl::StatusOr<Imatrix> ParseImatrix(std::string_view bytes, std::string_view label);

}  // namespace rtnq::client
