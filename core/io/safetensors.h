// Reading safetensors files: memory-mapped, validated strictly before any tensor is handed out.
// Writing lives in core/io/safetensors_writer.h, sharded checkpoints in
// core/io/sharded_checkpoint.h.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/dtype.h"
#include "core/io/safetensors_header.h"

namespace rtnq {

/// One tensor of an open file. `data` points into the mapping (valid while the file object lives,
/// moves included) and is not necessarily aligned: copy with memcpy, do not cast.
struct TensorInfo {
  std::string name;
  ElemType dtype = ElemType::kF32;
  std::vector<int64_t> shape;  ///< empty for a 0-d scalar
  int64_t num_elements = 0;
  uint64_t data_offset = 0;        ///< offset of the first byte in the data region
  absl::Span<const uint8_t> data;  ///< empty when the file was opened header only
};

/// A validated, read-only safetensors file. Movable, not copyable.
class SafetensorsFile {
 public:
  /// Maps `path` read-only and validates it (see ParseSafetensorsLayout for the rules). Open
  /// failures carry the errno code (NotFound, PermissionDenied, ...) and text; format violations
  /// are InvalidArgument naming the file, tensor and rule.
  static absl::StatusOr<SafetensorsFile> Open(const std::string& path);

  /// Reads only the length prefix and the header (a dry run's plan needs shapes, not data):
  /// the same header rules, with the data region taken to be what the tensors declare, so a
  /// truncated or unreadable data region is not noticed. Every tensor's `data` is empty.
  static absl::StatusOr<SafetensorsFile> OpenHeaderOnly(const std::string& path);

  /// Same validation over bytes held in memory (tests, network payloads); `label` names the
  /// source in errors.
  static absl::StatusOr<SafetensorsFile> FromBuffer(std::string bytes,
                                                    std::string label = "<buffer>");

  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  /// The path given to Open, or the label given to FromBuffer.
  const std::string& path() const { return path_; }
  /// Tensors in file order (by data offset).
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  /// Tensor names in file order.
  std::vector<std::string> names() const;
  /// The tensor called `name`, or nullptr.
  const TensorInfo* Find(std::string_view name) const;
  /// The header's `__metadata__` (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return size_; }
  /// JSON header length N, padding included (the data region starts at 8 + N).
  uint64_t header_size() const { return header_size_; }
  /// False when opened with OpenHeaderOnly: tensors carry no data.
  bool has_data() const { return !header_only_; }

 private:
  SafetensorsFile() = default;
  absl::Status Init(std::string_view label);
  void Adopt(SafetensorsLayout layout);  // tensors, metadata, header size from a parsed layout
  void Release();

  std::string path_;
  const uint8_t* base_ = nullptr;  // whole file
  uint64_t size_ = 0;
  bool mapped_ = false;                  // base_ is an mmap to munmap
  std::unique_ptr<std::string> buffer_;  // owns base_ for FromBuffer; heap, so moves keep spans
  uint64_t header_size_ = 0;
  bool header_only_ = false;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> by_name_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace rtnq
