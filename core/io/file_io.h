// Small POSIX file helpers shared by the checkpoint readers and writers: errno -> Status, and
// all-or-nothing file replacement.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rtnq {

/// The whole file at `path`. Errors come from ErrnoError (a missing file is NotFound naming the
/// path); a file longer than `max_bytes` is InvalidArgument "<path>: larger than N bytes".
absl::StatusOr<std::string> ReadFileToString(const std::string& path,
                                             uint64_t max_bytes = UINT64_MAX);

/// Status for a failed POSIX call: canonical code from `err` (ENOENT -> NotFound,
/// EACCES -> PermissionDenied, ...) and a message "<op> <path>: <strerror>".
absl::Status ErrnoError(int err, std::string_view op, std::string_view path);

/// Writes all of `data` at `offset`, retrying short writes and EINTR.
absl::Status PwriteAll(int fd, const void* data, size_t size, uint64_t offset,
                       std::string_view path);

/// fsyncs the directory holding `path` so a rename into it survives a crash. Filesystems that
/// cannot fsync a directory (EINVAL) are tolerated.
absl::Status FsyncParentDir(std::string_view path);

/// Replaces `path` with `contents` through a temporary file in the same directory, fsync and
/// rename, so readers see either the old file or the whole new one.
absl::Status WriteFileAtomically(const std::string& path, std::string_view contents);

/// A temporary-file name next to `path`, unique within this host for this process:
/// "<path>.tmp.<pid>.<counter>".
std::string TempPathFor(std::string_view path);

}  // namespace rtnq
