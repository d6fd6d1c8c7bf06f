#include "client/plan/imatrix.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/io/file_io.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq::client {
namespace {

static_assert(std::endian::native == std::endian::little, "importance files are little-endian");

// GGUF value types (ggml's gguf.h) and the one tensor type an importance matrix uses.
enum GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};
constexpr uint32_t kGgmlF32 = 0;
constexpr uint32_t kGgufMaxDims = 4;
constexpr uint64_t kGgufDefaultAlignment = 32;

// A bounds-checked little-endian cursor over the file.
class Reader {
 public:
  Reader(std::string_view bytes, std::string_view label) : b_(bytes), label_(label) {}

  size_t pos() const { return pos_; }
  uint64_t left() const { return b_.size() - pos_; }
  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("importance file ", std::string(label_), ": ", std::string(what)));
  }
  absl::Status Need(uint64_t n, std::string_view what) const {
    if (n <= left()) return absl::OkStatus();
    return Error(absl::StrCat(std::string(what), " needs ", n, " bytes at offset ", pos_,
                              " but the file has ", left(), " left (truncated?)"));
  }
  template <typename T>
  absl::StatusOr<T> Get(std::string_view what) {
    RTNQ_RETURN_IF_ERROR(Need(sizeof(T), what));
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  absl::StatusOr<std::string_view> Bytes(uint64_t n, std::string_view what) {
    RTNQ_RETURN_IF_ERROR(Need(n, what));
    std::string_view s = b_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  absl::StatusOr<std::string> GgufString(std::string_view what) {
    RTNQ_ASSIGN_OR_RETURN(const uint64_t n, Get<uint64_t>(what));
    RTNQ_ASSIGN_OR_RETURN(std::string_view s, Bytes(n, what));
    return std::string(s);
  }
  void Seek(size_t pos) { pos_ = pos; }
  std::string_view bytes() const { return b_; }

 private:
  std::string_view b_;
  std::string_view label_;
  size_t pos_ = 0;
};

absl::Status CheckValues(const Reader& r, const std::string& name, const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i]) || v[i] < 0) {
      return r.Error(absl::StrCat("entry \"", name, "\": value ", i, " is ", v[i],
                                  " (importances are finite and >= 0)"));
    }
  }
  return absl::OkStatus();
}

std::vector<float> Floats(std::string_view bytes) {
  std::vector<float> v(bytes.size() / 4);
  std::memcpy(v.data(), bytes.data(), v.size() * 4);
  return v;
}

// n_entries, then per entry: int32 name length, name, int32 ncall, int32 nval, nval floats
// (sums scaled to ncall calls); then optionally int32 chunks and an int32-length dataset name.
absl::StatusOr<Imatrix> ParseLegacy(Reader& r) {
  Imatrix m;
  m.format = "dat";
  RTNQ_ASSIGN_OR_RETURN(const int32_t n, r.Get<int32_t>("the entry count"));
  // Each entry takes at least 16 bytes: a count the file cannot hold is corruption.
  if (n < 1 || static_cast<uint64_t>(n) > r.left() / 16) {
    return r.Error(absl::StrCat("entry count ", n, " does not fit the ", r.left() + 4,
                                "-byte file (not an importance matrix?)"));
  }
  for (int32_t e = 0; e < n; ++e) {
    const std::string where = absl::StrCat("entry ", e);
    RTNQ_ASSIGN_OR_RETURN(const int32_t len, r.Get<int32_t>(where + " name length"));
    if (len < 1) return r.Error(absl::StrCat(where, ": name length ", len));
    RTNQ_ASSIGN_OR_RETURN(std::string_view name_bytes, r.Bytes(len, where + " name"));
    const std::string name(name_bytes);
    RTNQ_ASSIGN_OR_RETURN(const int32_t ncall, r.Get<int32_t>(where + " ncall"));
    RTNQ_ASSIGN_OR_RETURN(const int32_t nval, r.Get<int32_t>(where + " value count"));
    if (nval < 1) return r.Error(absl::StrCat("entry \"", name, "\": value count ", nval));
    RTNQ_ASSIGN_OR_RETURN(std::string_view data, r.Bytes(uint64_t{4} * static_cast<uint32_t>(nval),
                                                         "entry \"" + name + "\""));
    ImatrixEntry entry;
    entry.values = Floats(data);
    if (ncall > 0) {
      for (float& v : entry.values) v /= static_cast<float>(ncall);
    }
    RTNQ_RETURN_IF_ERROR(CheckValues(r, name, entry.values));
    if (!m.entries.emplace(name, std::move(entry)).second) {
      return r.Error(absl::StrCat("entry \"", name, "\" appears twice"));
    }
  }
  if (r.left() >= 4) {
    RTNQ_ASSIGN_OR_RETURN(const int32_t chunks, r.Get<int32_t>("the chunk count"));
    m.chunks = chunks;
  }
  if (r.left() >= 4) {
    RTNQ_ASSIGN_OR_RETURN(const int32_t len, r.Get<int32_t>("the dataset name length"));
    if (len < 0) return r.Error(absl::StrCat("dataset name length ", len));
    RTNQ_ASSIGN_OR_RETURN(std::string_view dataset, r.Bytes(len, "the dataset name"));
    if (!dataset.empty()) m.datasets.emplace_back(dataset);
  }
  if (r.left() != 0) {
    return r.Error(absl::StrCat(r.left(), " unexpected bytes at the end (offset ", r.pos(), ")"));
  }
  return m;
}

absl::StatusOr<uint64_t> ScalarSize(const Reader& r, uint32_t type, const std::string& key) {
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return 1;
    case kU16:
    case kI16:
      return 2;
    case kU32:
    case kI32:
    case kF32:
      return 4;
    case kU64:
    case kI64:
    case kF64:
      return 8;
    default:
      return r.Error(absl::StrCat("key \"", key, "\": unknown value type ", type));
  }
}

struct GgufTensor {
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

// The KV pairs rtnq needs; all others are skipped (their sizes still checked).
struct GgufKeys {
  std::optional<std::string> general_type;
  uint64_t alignment = kGgufDefaultAlignment;
  std::vector<std::string> datasets;
  int64_t chunks = 0;
};

absl::Status ReadKv(Reader& r, GgufKeys& keys) {
  RTNQ_ASSIGN_OR_RETURN(const std::string key, r.GgufString("a key"));
  RTNQ_ASSIGN_OR_RETURN(const uint32_t type, r.Get<uint32_t>("the type of key \"" + key + "\""));
  if (type == kString) {
    RTNQ_ASSIGN_OR_RETURN(std::string value, r.GgufString("key \"" + key + "\""));
    if (key == "general.type") keys.general_type = std::move(value);
    return absl::OkStatus();
  }
  if (type == kArray) {
    RTNQ_ASSIGN_OR_RETURN(const uint32_t elem, r.Get<uint32_t>("key \"" + key + "\" element type"));
    RTNQ_ASSIGN_OR_RETURN(const uint64_t count, r.Get<uint64_t>("key \"" + key + "\" count"));
    if (elem == kArray) return r.Error(absl::StrCat("key \"", key, "\": nested arrays"));
    if (elem == kString) {
      // Each string takes at least its 8-byte length.
      if (count > r.left() / 8) return r.Need(count * 8, "key \"" + key + "\"");
      for (uint64_t i = 0; i < count; ++i) {
        RTNQ_ASSIGN_OR_RETURN(std::string s, r.GgufString("key \"" + key + "\""));
        if (key == "imatrix.datasets") keys.datasets.push_back(std::move(s));
      }
      return absl::OkStatus();
    }
    RTNQ_ASSIGN_OR_RETURN(const uint64_t size, ScalarSize(r, elem, key));
    if (count > r.left() / size) return r.Need(count * size, "key \"" + key + "\"");
    return r.Bytes(count * size, key).status();
  }
  RTNQ_ASSIGN_OR_RETURN(const uint64_t size, ScalarSize(r, type, key));
  RTNQ_ASSIGN_OR_RETURN(std::string_view v, r.Bytes(size, "key \"" + key + "\""));
  uint64_t value = 0;
  std::memcpy(&value, v.data(), size);  // little-endian: the low bytes hold smaller types
  if (key == "general.alignment") {
    if (type != kU32 || value == 0 || (value & (value - 1)) != 0) {
      return r.Error(absl::StrCat("general.alignment ", value, " is not a power of two (u32)"));
    }
    keys.alignment = value;
  } else if (key == "imatrix.chunk_count" && (type == kU32 || type == kI32)) {
    keys.chunks = static_cast<int64_t>(value);
  }
  return absl::OkStatus();
}

absl::StatusOr<Imatrix> ParseGguf(Reader& r) {
  RTNQ_RETURN_IF_ERROR(r.Bytes(4, "the magic").status());
  RTNQ_ASSIGN_OR_RETURN(const uint32_t version, r.Get<uint32_t>("the GGUF version"));
  if (version != 2 && version != 3) {
    return r.Error(absl::StrCat("GGUF version ", version, " (2 and 3 are read)"));
  }
  RTNQ_ASSIGN_OR_RETURN(const uint64_t n_tensors, r.Get<uint64_t>("the tensor count"));
  RTNQ_ASSIGN_OR_RETURN(const uint64_t n_kv, r.Get<uint64_t>("the key count"));
  // A KV pair takes at least 12 bytes, a tensor description at least 24.
  if (n_kv > r.left() / 12 || n_tensors > r.left() / 24) {
    return r.Error(absl::StrCat(n_kv, " keys and ", n_tensors, " tensors do not fit the file"));
  }
  GgufKeys keys;
  for (uint64_t i = 0; i < n_kv; ++i) RTNQ_RETURN_IF_ERROR(ReadKv(r, keys));
  if (keys.general_type.has_value() && *keys.general_type != "imatrix") {
    return r.Error(absl::StrCat("a GGUF file of general.type \"", *keys.general_type,
                                "\", not an importance matrix"));
  }
  std::map<std::string, GgufTensor> tensors;
  for (uint64_t i = 0; i < n_tensors; ++i) {
    RTNQ_ASSIGN_OR_RETURN(const std::string name,
                          r.GgufString(absl::StrCat("tensor ", i, " name")));
    const std::string where = "tensor \"" + name + "\"";
    GgufTensor t;
    RTNQ_ASSIGN_OR_RETURN(const uint32_t dims, r.Get<uint32_t>(where + " dimensions"));
    if (dims < 1 || dims > kGgufMaxDims) {
      return r.Error(absl::StrCat(where, ": ", dims, " dimensions"));
    }
    for (uint32_t d = 0; d < dims; ++d) {
      RTNQ_ASSIGN_OR_RETURN(const uint64_t ne, r.Get<uint64_t>(where + " shape"));
      t.ne.push_back(ne);
    }
    RTNQ_ASSIGN_OR_RETURN(t.type, r.Get<uint32_t>(where + " type"));
    RTNQ_ASSIGN_OR_RETURN(t.offset, r.Get<uint64_t>(where + " offset"));
    if (!tensors.emplace(name, std::move(t)).second) {
      return r.Error(absl::StrCat(where, " appears twice"));
    }
  }
  const uint64_t data = (r.pos() + keys.alignment - 1) / keys.alignment * keys.alignment;
  // The F32 payload of a tensor; only the tensors an importance matrix uses are read.
  auto payload = [&](const std::string& name, const GgufTensor& t,
                     uint64_t count) -> absl::StatusOr<std::vector<float>> {
    if (t.type != kGgmlF32) {
      return r.Error(absl::StrCat(TensorPrefix(name), "ggml type ", t.type, " (F32 expected)"));
    }
    const uint64_t size = count * 4;
    if (data > r.bytes().size() || t.offset > r.bytes().size() - data ||
        size > r.bytes().size() - data - t.offset) {
      return r.Error(absl::StrCat(TensorPrefix(name), size, " bytes at offset ", t.offset,
                                  " run past the end of the file"));
    }
    return Floats(r.bytes().substr(data + t.offset, size));
  };
  Imatrix m;
  m.format = "gguf";
  m.datasets = keys.datasets;
  m.chunks = keys.chunks;
  const std::string kSums = ".in_sum2", kCounts = ".counts";
  for (const auto& [tname, t] : tensors) {
    if (!absl::EndsWith(tname, kSums)) continue;
    const std::string name = tname.substr(0, tname.size() - kSums.size());
    const uint64_t n = t.ne[0], mats = t.ne.size() > 1 ? t.ne[1] : 1;
    for (size_t d = 2; d < t.ne.size(); ++d) {
      if (t.ne[d] != 1) return r.Error(absl::StrCat(TensorPrefix(tname), "more than 2-D"));
    }
    if (n == 0 || mats == 0 || n > r.bytes().size() || mats > r.bytes().size() / 4 / n) {
      return r.Error(
          absl::StrCat(TensorPrefix(tname), "shape [", n, ", ", mats, "] does not fit the file"));
    }
    auto c = tensors.find(name + std::string(kCounts));
    if (c == tensors.end()) {
      return r.Error(absl::StrCat("entry \"", name, "\" has ", kSums, " but no ", kCounts));
    }
    uint64_t count_elems = 1;
    for (uint64_t d : c->second.ne) count_elems *= d;
    if (count_elems != mats) {
      return r.Error(
          absl::StrCat("entry \"", name, "\": ", count_elems, " counts for ", mats, " matrices"));
    }
    RTNQ_ASSIGN_OR_RETURN(const std::vector<float> sums, payload(tname, t, n * mats));
    RTNQ_ASSIGN_OR_RETURN(const std::vector<float> counts, payload(c->first, c->second, mats));
    ImatrixEntry entry;
    entry.n_per_row = static_cast<int64_t>(n);
    entry.n_mat = static_cast<int64_t>(mats);
    entry.values.resize(n * mats);
    for (uint64_t k = 0; k < mats; ++k) {
      if (!std::isfinite(counts[k]) || counts[k] < 0) {
        return r.Error(absl::StrCat("entry \"", name, "\": count ", k, " is ", counts[k]));
      }
      for (uint64_t j = 0; j < n; ++j) {
        entry.values[k * n + j] = counts[k] > 0 ? sums[k * n + j] / counts[k] : 1.0f;
      }
    }
    RTNQ_RETURN_IF_ERROR(CheckValues(r, name, entry.values));
    m.entries.emplace(name, std::move(entry));
  }
  if (m.entries.empty()) return r.Error("no \".in_sum2\" tensors: not an importance matrix");
  return m;
}

}  // namespace

absl::StatusOr<Imatrix> ParseImatrix(std::string_view bytes, std::string_view label) {
  Reader r(bytes, label);
  if (bytes.substr(0, 4) == "GGUF") return ParseGguf(r);
  return ParseLegacy(r);
}

absl::StatusOr<Imatrix> ReadImatrix(const std::string& path) {
  RTNQ_ASSIGN_OR_RETURN(const std::string bytes, ReadFileToString(path, kMaxImatrixBytes));
  return ParseImatrix(bytes, path);
}

}  // namespace rtnq::client
