// Streaming safetensors writer: the header is fixed up front from the known shapes, tensor bytes
// arrive in any order (whole or in chunks, from any thread), and the file appears under its final
// name only when every byte has been written.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/io/safetensors_header.h"

namespace rtnq {

/// Where a writer keeps its bytes until Finish(), for runs that must survive an interruption
/// (rtnq quantize --resume). The defaults give the plain all-or-nothing writer.
struct SafetensorsWriterOptions {
  /// The temporary file; empty: TempPathFor(path). A given path is replaced if it exists
  /// (unless reuse_temp).
  std::string temp_path;
  /// Abandon() and destruction close the temporary file but leave it (with what was written).
  bool keep_temp = false;
  /// Open an existing temp_path instead of creating it: its size and header bytes must equal
  /// what `specs` and `metadata` give (FailedPrecondition otherwise); MarkWritten() then declares
  /// the tensors already in it.
  bool reuse_temp = false;
};

/// Writes one safetensors file through `<path>.tmp.<pid>.<n>`, renamed into place by Finish().
/// Destroying or Abandon()ing it before Finish() removes the temporary file, so a failed run
/// leaves nothing that looks finished. Write calls are thread-safe. Movable, not copyable.
class SafetensorsWriter {
 public:
  /// Validates `specs` (see BuildSafetensorsHeader), creates the temporary file preallocated to
  /// the final size and writes the header. Data is laid out in `specs` order. `metadata` defaults
  /// to {"format": "pt"}; an empty map writes no `__metadata__`.
  static absl::StatusOr<SafetensorsWriter> Create(
      std::string path, std::vector<TensorSpec> specs,
      std::optional<std::map<std::string, std::string>> metadata = std::nullopt);
  /// Same, with a chosen temporary file (see SafetensorsWriterOptions).
  static absl::StatusOr<SafetensorsWriter> Create(
      std::string path, std::vector<TensorSpec> specs,
      std::optional<std::map<std::string, std::string>> metadata,
      const SafetensorsWriterOptions& options);

  SafetensorsWriter(SafetensorsWriter&&) noexcept;
  SafetensorsWriter& operator=(SafetensorsWriter&&) noexcept;
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  /// Abandons the file unless Finish() succeeded.
  ~SafetensorsWriter();

  /// Writes the whole tensor; `data.size()` must equal its byte size.
  absl::Status WriteTensor(std::string_view name, absl::Span<const uint8_t> data);
  /// Writes `data` at byte `offset` within the tensor. NotFound for an unknown name;
  /// InvalidArgument for bytes past the tensor's end or overlapping bytes already written.
  absl::Status WriteTensorChunk(std::string_view name, uint64_t offset,
                                absl::Span<const uint8_t> data);
  /// Declares all of tensor `name` already present in a reused temporary file (the caller has
  /// checked its bytes). NotFound for an unknown name; InvalidArgument if any of it was written.
  absl::Status MarkWritten(std::string_view name);
  /// Forgets every byte written to tensor `name` so far, so that it can be written again from
  /// the start (a retried tensor whose first attempt streamed part of its bytes). The old bytes
  /// stay in the file until overwritten; Finish still needs the whole tensor. NotFound for an
  /// unknown name.
  absl::Status DiscardWritten(std::string_view name);
  /// Checks every tensor was written completely (FailedPrecondition naming the first that was
  /// not; the writer stays usable), fsyncs and renames the file to its final path. After an I/O
  /// error the writer is failed: Finish returns that error. A failure to fsync the directory
  /// after the rename is still reported, though the file is then in place.
  absl::Status Finish();
  /// Closes and removes the temporary file; later writes fail. No-op after Finish().
  void Abandon();

  const std::string& path() const;
  /// Where the bytes go until Finish().
  const std::string& temp_path() const;
  /// File offset of the data region (the header's size).
  uint64_t data_offset() const;
  /// Total file size: header plus data.
  uint64_t file_size() const;
  /// Tensors with their data offsets, in `specs` order.
  const std::vector<HeaderTensor>& tensors() const;

 private:
  struct State;
  explicit SafetensorsWriter(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace rtnq
