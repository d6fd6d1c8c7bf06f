#include "core/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "core/status_macros.h"

namespace rtnq {

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
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
  SafetensorsFile f;
  f.path_ = path;
  f.size_ = static_cast<uint64_t>(st.st_size);
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
  RETURN_IF_ERROR(f.Init(path));
  return f;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::FromBuffer(std::string bytes, std::string label) {
  SafetensorsFile f;
  f.path_ = std::move(label);
  f.buffer_ = std::make_unique<std::string>(std::move(bytes));
  f.base_ = reinterpret_cast<const uint8_t*>(f.buffer_->data());
  f.size_ = f.buffer_->size();
  RETURN_IF_ERROR(f.Init(f.path_));
  return f;
}

absl::Status SafetensorsFile::Init(std::string_view label) {
  ASSIGN_OR_RETURN(SafetensorsLayout layout,
                   ParseSafetensorsLayout(label, absl::MakeConstSpan(base_, size_)));
  header_size_ = layout.header_size;
  metadata_ = std::move(layout.metadata);
  tensors_.reserve(layout.tensors.size());
  for (HeaderTensor& t : layout.tensors) {
    by_name_.emplace(t.name, tensors_.size());
    const uint8_t* data = base_ + layout.data_offset + t.begin;
    tensors_.push_back(TensorInfo{std::move(t.name), t.dtype, std::move(t.shape), t.num_elements,
                                  t.begin, absl::MakeConstSpan(data, t.end - t.begin)});
  }
  return absl::OkStatus();
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
  tensors_ = std::move(other.tensors_);
  by_name_ = std::move(other.by_name_);
  metadata_ = std::move(other.metadata_);
  other.tensors_.clear();
  other.by_name_.clear();
  return *this;
}

SafetensorsFile::~SafetensorsFile() { Release(); }

}  // namespace rtnq
