#include "core/io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"

namespace rtnq {
namespace {

struct OpenedFile {
  int fd;
  uint64_t size;
};

// Opens `path` read-only; it must be a regular file (the caller closes the descriptor).
absl::StatusOr<OpenedFile> OpenRegularFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, "stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat("safetensors file ", path, ": not a regular file"));
  }
  return OpenedFile{fd, static_cast<uint64_t>(st.st_size)};
}

// Reads exactly `size` bytes at `offset` (the caller asked for no more than the file holds).
absl::Status PreadExactly(int fd, const std::string& path, uint64_t offset, char* out,
                          size_t size) {
  while (size > 0) {
    const ssize_t n = ::pread(fd, out, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return ErrnoError(n < 0 ? errno : EIO, "read", path);
    out += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  RTNQ_ASSIGN_OR_RETURN(const OpenedFile opened, OpenRegularFile(path));
  const int fd = opened.fd;
  SafetensorsFile f;
  f.path_ = path;
  f.size_ = opened.size;
  if (f.size_ > 0) {
    // MAP_PRIVATE + PROT_READ: pages come from the page cache on demand, nothing is copied, and
    // the mapping outlives the descriptor.
    void* p = ::mmap(nullptr, f.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return ErrnoError(err, "mmap", path);
    }
    f.base_ = static_cast<const uint8_t*>(p);
    f.mapped_ = true;
  }
  ::close(fd);
  RTNQ_RETURN_IF_ERROR(f.Init(path));
  return f;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::FromBuffer(std::string bytes, std::string label) {
  SafetensorsFile f;
  f.path_ = std::move(label);
  f.buffer_ = std::make_unique<std::string>(std::move(bytes));
  f.base_ = reinterpret_cast<const uint8_t*>(f.buffer_->data());
  f.size_ = f.buffer_->size();
  RTNQ_RETURN_IF_ERROR(f.Init(f.path_));
  return f;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::OpenHeaderOnly(const std::string& path) {
  RTNQ_ASSIGN_OR_RETURN(const OpenedFile opened, OpenRegularFile(path));
  const int fd = opened.fd;
  // The length prefix, then the header it announces (bounded by the format's limit); the
  // parser reports a short file or a header past its end.
  const uint64_t size = opened.size;
  std::string head(std::min<uint64_t>(size, 8), '\0');
  absl::Status read = PreadExactly(fd, path, 0, head.data(), head.size());
  if (read.ok() && head.size() == 8) {
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(head[i]);
    const uint64_t want = std::min(size, 8 + std::min(n, kMaxSafetensorsHeaderSize));
    head.resize(want);
    read = PreadExactly(fd, path, 8, head.data() + 8, want - 8);
  }
  ::close(fd);
  RTNQ_RETURN_IF_ERROR(read);
  RTNQ_ASSIGN_OR_RETURN(
      SafetensorsLayout layout,
      ParseSafetensorsHeaderOnly(
          path, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(head.data()), head.size())));
  SafetensorsFile f;
  f.path_ = path;
  f.size_ = size;
  f.header_only_ = true;
  f.Adopt(std::move(layout));
  return f;
}

absl::Status SafetensorsFile::Init(std::string_view label) {
  RTNQ_ASSIGN_OR_RETURN(SafetensorsLayout layout,
                        ParseSafetensorsLayout(label, absl::MakeConstSpan(base_, size_)));
  Adopt(std::move(layout));
  return absl::OkStatus();
}

void SafetensorsFile::Adopt(SafetensorsLayout layout) {
  header_size_ = layout.header_size;
  metadata_ = std::move(layout.metadata);
  tensors_.reserve(layout.tensors.size());
  for (HeaderTensor& t : layout.tensors) {
    by_name_.emplace(t.name, tensors_.size());
    absl::Span<const uint8_t> data;
    if (!header_only_)
      data = absl::MakeConstSpan(base_ + layout.data_offset + t.begin, t.end - t.begin);
    tensors_.push_back(
        TensorInfo{std::move(t.name), t.dtype, std::move(t.shape), t.num_elements, t.begin, data});
  }
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) out.push_back(t.name);
  return out;
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::Release() {
  if (mapped_) ::munmap(const_cast<uint8_t*>(base_), size_);
  mapped_ = false;
  base_ = nullptr;
  buffer_.reset();
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept { *this = std::move(other); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
  if (this == &other) return *this;
  Release();
  path_ = std::move(other.path_);
  base_ = std::exchange(other.base_, nullptr);
  size_ = std::exchange(other.size_, 0);
  mapped_ = std::exchange(other.mapped_, false);
  buffer_ = std::move(other.buffer_);
  header_size_ = std::exchange(other.header_size_, 0);
  header_only_ = std::exchange(other.header_only_, false);
  tensors_ = std::move(other.tensors_);
  by_name_ = std::move(other.by_name_);
  metadata_ = std::move(other.metadata_);
  other.tensors_.clear();
  other.by_name_.clear();
  return *this;
}

SafetensorsFile::~SafetensorsFile() { Release(); }

}  // namespace rtnq
