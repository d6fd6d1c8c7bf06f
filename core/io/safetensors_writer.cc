#include "core/io/safetensors_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <mutex>
#include <shared_mutex>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

// Byte ranges of one tensor already written: disjoint [begin, end) intervals keyed by begin,
// adjacent ones merged so a tensor written in order stays a single interval.
struct Written {
  std::map<uint64_t, uint64_t> ranges;
  uint64_t bytes = 0;
};

}  // namespace

struct SafetensorsWriter::State {
  std::string path;
  std::string tmp;
  BuiltHeader header;
  std::map<std::string, size_t, std::less<>> index;
  // Shared by writes for their pwrite, exclusive while Finish/Abandon close the descriptor.
  std::shared_mutex io_mu;
  std::mutex mu;  // guards everything below
  std::vector<Written> written;
  int fd = -1;
  bool keep_temp = false;
  enum class Phase { kOpen, kFinished, kAbandoned } phase = Phase::kOpen;
  absl::Status failure;

  absl::Status Usable() const {
    if (phase == Phase::kFinished) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": writer already finished"));
    }
    if (phase == Phase::kAbandoned) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": writer was abandoned"));
    }
    return failure;
  }

  // The usable writer's tensor called `name`, by index into header.tensors. Called with mu held.
  absl::StatusOr<size_t> UsableTensor(std::string_view name) const {
    RTNQ_RETURN_IF_ERROR(Usable());
    auto it = index.find(name);
    if (it == index.end()) {
      return absl::NotFoundError(
          absl::StrCat(path, ": no tensor \"", std::string(name), "\" in this file"));
    }
    return it->second;
  }

  // Called with io_mu held exclusively and mu held.
  void CloseAndRemove() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    if (!keep_temp) ::unlink(tmp.c_str());
  }
};

absl::StatusOr<SafetensorsWriter> SafetensorsWriter::Create(
    std::string path, std::vector<TensorSpec> specs,
    std::optional<std::map<std::string, std::string>> metadata) {
  return Create(std::move(path), std::move(specs), std::move(metadata), {});
}

absl::StatusOr<SafetensorsWriter> SafetensorsWriter::Create(
    std::string path, std::vector<TensorSpec> specs,
    std::optional<std::map<std::string, std::string>> metadata,
    const SafetensorsWriterOptions& options) {
  if (!metadata.has_value()) metadata = std::map<std::string, std::string>{{"format", "pt"}};
  absl::StatusOr<BuiltHeader> header = BuildSafetensorsHeader(specs, *metadata);
  if (!header.ok()) {
    return absl::Status(header.status().code(),
                        absl::StrCat("safetensors file ", path, ": ", header.status().message()));
  }
  auto s = std::make_unique<State>();
  s->path = std::move(path);
  s->tmp = options.temp_path.empty() ? TempPathFor(s->path) : options.temp_path;
  s->header = *std::move(header);
  s->written.resize(s->header.tensors.size());
  for (size_t i = 0; i < s->header.tensors.size(); ++i) {
    s->index.emplace(s->header.tensors[i].name, i);
  }
  if (options.reuse_temp) {
    s->fd = ::open(s->tmp.c_str(), O_RDWR | O_CLOEXEC);
    if (s->fd < 0) return ErrnoError(errno, "open", s->tmp);
  } else {
    // The default name is unique, so O_EXCL; a chosen one replaces a leftover.
    const int excl = options.temp_path.empty() ? O_EXCL : O_TRUNC;
    s->fd = ::open(s->tmp.c_str(), O_WRONLY | O_CREAT | excl | O_CLOEXEC, 0644);
    if (s->fd < 0) return ErrnoError(errno, "create", s->tmp);
  }
  s->keep_temp = options.keep_temp;
  SafetensorsWriter w(std::move(s));
  State& st = *w.state_;
  if (options.reuse_temp) {
    // Any difference in the header means a different plan: the old bytes are not reusable.
    std::string have(st.header.bytes.size(), '\0');
    const ssize_t n = ::pread(st.fd, have.data(), have.size(), 0);
    struct stat info;
    if (::fstat(st.fd, &info) != 0) return ErrnoError(errno, "stat", st.tmp);
    if (n != static_cast<ssize_t>(have.size()) || have != st.header.bytes ||
        static_cast<uint64_t>(info.st_size) != st.header.file_size()) {
      return absl::FailedPreconditionError(
          absl::StrCat(st.tmp, ": header or size differs from this run's plan"));
    }
    return w;
  }
  // Reserve the space now so a full disk fails before any work, not at the last tensor.
  const off_t size = static_cast<off_t>(st.header.file_size());
  if (::ftruncate(st.fd, size) != 0) return ErrnoError(errno, "truncate", st.tmp);
  int rc = ::posix_fallocate(st.fd, 0, size);
  if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) return ErrnoError(rc, "preallocate", st.tmp);
  RTNQ_RETURN_IF_ERROR(PwriteAll(st.fd, st.header.bytes.data(), st.header.bytes.size(), 0, st.tmp));
  return w;
}

absl::Status SafetensorsWriter::WriteTensor(std::string_view name, absl::Span<const uint8_t> data) {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->index.find(name);
    if (it != state_->index.end()) {
      const HeaderTensor& t = state_->header.tensors[it->second];
      if (data.size() != t.end - t.begin) {
        return absl::InvalidArgumentError(absl::StrCat(
            state_->path, ": tensor \"", std::string(name), "\": got ", data.size(), " bytes, ",
            ElemTypeName(t.dtype), " shape ", ShapeString(t.shape), " needs ", t.end - t.begin));
      }
    }
  }
  return WriteTensorChunk(name, 0, data);
}

absl::Status SafetensorsWriter::WriteTensorChunk(std::string_view name, uint64_t offset,
                                                 absl::Span<const uint8_t> data) {
  State& s = *state_;
  std::shared_lock<std::shared_mutex> io(s.io_mu);
  uint64_t file_offset = 0;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    RTNQ_ASSIGN_OR_RETURN(const size_t i, s.UsableTensor(name));
    const HeaderTensor& t = s.header.tensors[i];
    const uint64_t size = t.end - t.begin;
    const uint64_t end = offset + data.size();
    auto where = [&] {
      return absl::StrCat(s.path, ": tensor \"", t.name, "\": chunk [", offset, ", ",
                          offset + data.size(), ")");
    };
    if (offset > size || data.size() > size - offset) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), " runs past the tensor's ", size, " bytes"));
    }
    if (data.empty()) return absl::OkStatus();
    Written& w = s.written[i];
    auto next = w.ranges.upper_bound(offset);
    if (next != w.ranges.end() && next->first < end) {
      return absl::InvalidArgumentError(absl::StrCat(where(), " overlaps bytes [", next->first,
                                                     ", ", next->second, ") already written"));
    }
    auto prev = next == w.ranges.begin() ? w.ranges.end() : std::prev(next);
    if (prev != w.ranges.end() && prev->second > offset) {
      return absl::InvalidArgumentError(absl::StrCat(where(), " overlaps bytes [", prev->first,
                                                     ", ", prev->second, ") already written"));
    }
    uint64_t merged_begin = offset, merged_end = end;
    if (prev != w.ranges.end() && prev->second == offset) {
      merged_begin = prev->first;
      w.ranges.erase(prev);
    }
    if (next != w.ranges.end() && next->first == end) {
      merged_end = next->second;
      w.ranges.erase(next);
    }
    w.ranges[merged_begin] = merged_end;
    w.bytes += data.size();
    file_offset = s.header.bytes.size() + t.begin + offset;
  }
  absl::Status st = PwriteAll(s.fd, data.data(), data.size(), file_offset, s.tmp);
  if (!st.ok()) {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.failure.ok()) s.failure = st;
  }
  return st;
}

absl::Status SafetensorsWriter::MarkWritten(std::string_view name) {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  RTNQ_ASSIGN_OR_RETURN(const size_t i, s.UsableTensor(name));
  const HeaderTensor& t = s.header.tensors[i];
  Written& w = s.written[i];
  if (w.bytes != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.path, ": tensor \"", t.name, "\" already has bytes written"));
  }
  if (t.end > t.begin) w.ranges[0] = t.end - t.begin;
  w.bytes = t.end - t.begin;
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::DiscardWritten(std::string_view name) {
  State& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  RTNQ_ASSIGN_OR_RETURN(const size_t i, s.UsableTensor(name));
  s.written[i] = Written{};
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish() {
  State& s = *state_;
  std::unique_lock<std::shared_mutex> io(s.io_mu);
  std::lock_guard<std::mutex> lock(s.mu);
  RTNQ_RETURN_IF_ERROR(s.Usable());
  size_t incomplete = 0;
  const HeaderTensor* first = nullptr;
  uint64_t first_written = 0;
  for (size_t i = 0; i < s.header.tensors.size(); ++i) {
    const HeaderTensor& t = s.header.tensors[i];
    if (s.written[i].bytes == t.end - t.begin) continue;
    if (incomplete++ == 0) {
      first = &t;
      first_written = s.written[i].bytes;
    }
  }
  if (first != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat(s.path, ": tensor \"", first->name, "\" has ", first_written, " of ",
                     first->end - first->begin, " bytes written",
                     incomplete > 1 ? absl::StrCat(" (", incomplete, " tensors incomplete)") : ""));
  }
  absl::Status st;
  if (::fsync(s.fd) != 0) st = ErrnoError(errno, "fsync", s.tmp);
  if (::close(s.fd) != 0 && st.ok()) st = ErrnoError(errno, "close", s.tmp);
  s.fd = -1;
  if (st.ok() && ::rename(s.tmp.c_str(), s.path.c_str()) != 0) {
    st = ErrnoError(errno, absl::StrCat("rename ", s.tmp, " to"), s.path);
  }
  if (!st.ok()) {
    s.CloseAndRemove();
    s.failure = st;
    return st;
  }
  s.phase = State::Phase::kFinished;
  return FsyncParentDir(s.path);
}

void SafetensorsWriter::Abandon() {
  if (state_ == nullptr) return;
  State& s = *state_;
  std::unique_lock<std::shared_mutex> io(s.io_mu);
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.phase != State::Phase::kOpen) return;
  s.CloseAndRemove();
  s.phase = State::Phase::kAbandoned;
}

const std::string& SafetensorsWriter::path() const { return state_->path; }
const std::string& SafetensorsWriter::temp_path() const { return state_->tmp; }
uint64_t SafetensorsWriter::data_offset() const { return state_->header.bytes.size(); }
uint64_t SafetensorsWriter::file_size() const { return state_->header.file_size(); }
const std::vector<HeaderTensor>& SafetensorsWriter::tensors() const {
  return state_->header.tensors;
}

SafetensorsWriter::SafetensorsWriter(std::unique_ptr<State> state) : state_(std::move(state)) {}
SafetensorsWriter::SafetensorsWriter(SafetensorsWriter&&) noexcept = default;
SafetensorsWriter& SafetensorsWriter::operator=(SafetensorsWriter&& other) noexcept {
  if (this != &other) {
    Abandon();
    state_ = std::move(other.state_);
  }
  return *this;
}
SafetensorsWriter::~SafetensorsWriter() { Abandon(); }

}  // namespace rtnq
