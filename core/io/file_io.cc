#include "core/io/file_io.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace rtnq {

absl::Status ErrnoError(int err, std::string_view op, std::string_view path) {
  return absl::ErrnoToStatus(err, absl::StrCat(std::string(op), " ", std::string(path)));
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  std::string out;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoError(err, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": larger than ", max_bytes, " bytes"));
    }
  }
  ::close(fd);
  return out;
}

absl::Status PwriteAll(int fd, const void* data, size_t size, uint64_t offset,
                       std::string_view path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::pwrite(fd, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write", path);
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status FsyncParentDir(std::string_view path) {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string_view::npos
                              ? std::string(".")
                              : std::string(path.substr(0, slash == 0 ? 1 : slash));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open directory", dir);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL) return ErrnoError(err, "fsync directory", dir);
  return absl::OkStatus();
}

std::string TempPathFor(std::string_view path) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(std::string(path), ".tmp.", ::getpid(), ".", counter.fetch_add(1));
}

absl::Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  const std::string tmp = TempPathFor(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "create", tmp);
  absl::Status st = PwriteAll(fd, contents.data(), contents.size(), 0, tmp);
  if (st.ok() && ::fsync(fd) != 0) st = ErrnoError(errno, "fsync", tmp);
  if (::close(fd) != 0 && st.ok()) st = ErrnoError(errno, "close", tmp);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    st = ErrnoError(errno, absl::StrCat("rename ", tmp, " to"), path);
  }
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return FsyncParentDir(path);
}

}  // namespace rtnq
