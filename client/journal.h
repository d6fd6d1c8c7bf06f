// The resume journal of a quantize run: one JSON line per finished quantized tensor with the
// CRC32C of each output tensor's bytes, so --resume can re-verify and reuse them.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace rtnq::client {

/// One finished tensor: its input's checksum, its output tensors' names and checksums, and its
/// report entry.
struct JournalEntry {
  std::string tensor;
  uint32_t input_crc32c = 0;  ///< of the input tensor's bytes: a changed input is not reused
  std::vector<std::pair<std::string, uint32_t>> outputs;  ///< name, CRC32C
  nlohmann::ordered_json report;                          ///< TensorReportToJson
};

/// Append-only journal file. Append is thread-safe.
class Journal {
 public:
  /// Creates (truncates) `path` and writes `entries` to it.
  static absl::StatusOr<std::unique_ptr<Journal>> Create(const std::string& path,
                                                         const std::vector<JournalEntry>& entries);
  /// Reads every complete line of `path`; a torn last line (the process died mid-write) and
  /// lines that do not parse are ignored. A missing file gives no entries.
  static std::vector<JournalEntry> Load(const std::string& path);
  ~Journal();

  /// Appends one line (written with a single write(2), so a kill leaves whole lines).
  absl::Status Append(const JournalEntry& entry);
  const std::string& path() const { return path_; }

 private:
  Journal(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
  std::mutex mu_;
};

}  // namespace rtnq::client
