// The ResultSink of a quantize run: a tensor's outputs go straight into the output file at their
// planned offsets as they arrive, so the client never holds a result whole.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "client/backend.h"
#include "core/io/crc32c.h"
#include "core/io/safetensors_writer.h"

namespace rtnq::client {

/// Writes one planned tensor's outputs into `writer`, checking them against the plan and
/// checksumming each output (CRC32C in offset order) for the resume journal. Discard forgets the
/// partial bytes in the writer (SafetensorsWriter::DiscardWritten), so a retried tensor is
/// written afresh and a failed one never looks finished.
class TensorFileSink : public ResultSink {
 public:
  /// `planned` are the outputs the plan laid out for tensor `tensor`; both must outlive the sink.
  TensorFileSink(const std::string& tensor, const std::vector<TensorSpec>& planned,
                 SafetensorsWriter& writer);

  /// Internal naming the tensor when the outputs are not the planned ones.
  absl::Status Begin(const std::vector<TensorSpec>& outputs) override;
  absl::Status Write(size_t index, uint64_t offset, absl::Span<const uint8_t> data) override;
  void Discard() override;

  /// The outputs' names and CRC32Cs, once every byte of every output has been written;
  /// Internal naming the first incomplete output otherwise.
  absl::StatusOr<std::vector<std::pair<std::string, uint32_t>>> Checksums() const;
  /// Output bytes written by the current attempt.
  uint64_t bytes() const { return bytes_; }

 private:
  const std::string& tensor_;
  const std::vector<TensorSpec>& planned_;
  SafetensorsWriter& writer_;
  bool begun_ = false;
  std::vector<uint64_t> sizes_;    // planned bytes per output
  std::vector<uint64_t> written_;  // bytes per output so far (they arrive in order)
  std::vector<Crc32c> crcs_;
  uint64_t bytes_ = 0;
};

}  // namespace rtnq::client
