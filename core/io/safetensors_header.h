// The safetensors header: parsing with strict validation, and building one for a writer.
// Layout: u64 little-endian header length N, N bytes of JSON, then the data region; tensor
// offsets are relative to the data region's start.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/config/input_limits.h"
#include "core/dtype.h"

namespace rtnq {

/// A tensor to be written: its name, element type and shape (empty shape = scalar).
struct TensorSpec {
  std::string name;
  ElemType dtype = ElemType::kF32;
  std::vector<int64_t> shape;
};

/// One tensor entry of a validated header.
struct HeaderTensor {
  std::string name;
  ElemType dtype = ElemType::kF32;
  std::vector<int64_t> shape;
  int64_t num_elements = 0;
  uint64_t begin = 0;  ///< byte offset in the data region
  uint64_t end = 0;    ///< one past the last byte; end - begin = num_elements * ElemSize(dtype)
};

/// A validated file layout.
struct SafetensorsLayout {
  uint64_t header_size = 0;  ///< N: JSON bytes, padding included
  uint64_t data_offset = 0;  ///< 8 + N: where the data region starts in the file
  uint64_t data_size = 0;
  std::vector<HeaderTensor> tensors;  ///< in file order (by data offset, then name)
  std::map<std::string, std::string> metadata;
};

/// Validates the length prefix and header of a whole file held in `file`. Every violation is an
/// InvalidArgument naming `label` (the file), the tensor and the rule: short file, header length
/// out of range, bad JSON or UTF-8, nesting deeper than the limit (the path names the tensor and
/// field), duplicate keys, more tensors or a longer name than the limits, bad entries, unknown
/// dtype, bad shape, element count overflow, bad data_offsets, byte length mismatch, offsets past
/// the data region, overlapping tensors, holes or trailing bytes, bad __metadata__.
/// Time O(header bytes + tensors x log tensors), memory linear in the header, no recursion.
absl::StatusOr<SafetensorsLayout> ParseSafetensorsLayout(std::string_view label,
                                                         absl::Span<const uint8_t> file,
                                                         const SafetensorsLimits& limits = {});

/// The same rules for a file's first bytes only (at least its length prefix and header): the
/// data region is taken to be exactly what the tensors declare (data_size = the largest end
/// offset), however long the file really is. For planning without reading tensor data.
absl::StatusOr<SafetensorsLayout> ParseSafetensorsHeaderOnly(std::string_view label,
                                                             absl::Span<const uint8_t> head,
                                                             const SafetensorsLimits& limits = {});

/// Product of `shape`; InvalidArgument on a negative dimension or int64 overflow.
absl::StatusOr<int64_t> CheckedNumElements(absl::Span<const int64_t> shape);

/// A header built for a writer: the bytes to put at file offset 0 (prefix, JSON padded with
/// spaces to a multiple of 8) and where each tensor's data goes.
struct BuiltHeader {
  std::string bytes;
  std::vector<HeaderTensor> tensors;  ///< in `specs` order
  uint64_t data_size = 0;
  uint64_t file_size() const { return bytes.size() + data_size; }
};

/// Lays the tensors out back to back in the order given, `__metadata__` first (omitted when
/// empty). InvalidArgument on an empty, reserved ("__metadata__"), duplicate, too long or
/// non-UTF-8 name, a bad shape, size overflow, more tensors or a header over the size limit (what
/// this writes, ParseSafetensorsLayout reads back).
absl::StatusOr<BuiltHeader> BuildSafetensorsHeader(
    const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& metadata);

}  // namespace rtnq
