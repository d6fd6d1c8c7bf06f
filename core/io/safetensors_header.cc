#include "core/io/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/config/strict_json.h"
#include "core/status_macros.h"
#include "core/tensor_text.h"

namespace rtnq {
namespace {

using json = nlohmann::ordered_json;
constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// Names reach messages escaped and cut: the header may be hostile.
constexpr size_t kNameBytesInMessages = 256;

class HeaderErrors {
 public:
  explicit HeaderErrors(std::string_view label)
      : prefix_(absl::StrCat("safetensors file ", std::string(label), ": ")) {}
  absl::Status File(absl::string_view rule) const {
    return absl::InvalidArgumentError(absl::StrCat(prefix_, rule));
  }
  absl::Status Tensor(std::string_view name, absl::string_view rule) const {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix_, "tensor ", QuoteForMessage(name, kNameBytesInMessages), ": ", rule));
  }

 private:
  std::string prefix_;
};

// Reads a JSON value as a non-negative integer; `what` names it in the error.
absl::StatusOr<uint64_t> NonNegativeInt(const json& v, std::string_view what) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(what), " is negative (", v.dump(), ")"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(what), " is not an integer (", JsonSnippet(v), ")"));
}

absl::StatusOr<HeaderTensor> ParseEntry(const HeaderErrors& err, const std::string& name,
                                        const json& entry) {
  if (!entry.is_object()) return err.Tensor(name, "entry is not a JSON object");
  // One pass over the keys (the parser has rejected duplicates).
  const json* fields[3] = {nullptr, nullptr, nullptr};
  static constexpr const char* kFields[3] = {"dtype", "shape", "data_offsets"};
  for (auto it = entry.begin(); it != entry.end(); ++it) {
    const auto known = std::find(std::begin(kFields), std::end(kFields), it.key());
    if (known == std::end(kFields)) {
      return err.Tensor(name, absl::StrCat("unknown key ", QuoteForMessage(it.key()),
                                           " (expected dtype, shape, data_offsets)"));
    }
    fields[known - std::begin(kFields)] = &it.value();
  }
  for (int i = 0; i < 3; ++i) {
    if (fields[i] == nullptr) {
      return err.Tensor(name, absl::StrCat("missing key \"", kFields[i], "\""));
    }
  }
  HeaderTensor t;
  t.name = name;

  const json& dtype = *fields[0];
  if (!dtype.is_string()) return err.Tensor(name, "dtype is not a string");
  absl::StatusOr<ElemType> et = ParseElemType(dtype.get_ref<const std::string&>());
  if (!et.ok()) {
    return err.Tensor(name, absl::StrCat("unsupported dtype ",
                                         QuoteForMessage(dtype.get_ref<const std::string&>())));
  }
  t.dtype = *et;

  const json& shape = *fields[1];
  if (!shape.is_array()) return err.Tensor(name, "shape is not an array");
  for (size_t i = 0; i < shape.size(); ++i) {
    absl::StatusOr<uint64_t> d = NonNegativeInt(shape[i], absl::StrCat("shape[", i, "]"));
    if (!d.ok()) return err.Tensor(name, d.status().message());
    if (*d > kInt64Max) {
      return err.Tensor(name, absl::StrCat("shape[", i, "] = ", *d, " exceeds int64"));
    }
    t.shape.push_back(static_cast<int64_t>(*d));
  }
  absl::StatusOr<int64_t> n = CheckedNumElements(t.shape);
  if (!n.ok()) return err.Tensor(name, n.status().message());
  t.num_elements = *n;

  const json& offs = *fields[2];
  if (!offs.is_array() || offs.size() != 2) {
    return err.Tensor(name, "data_offsets is not an array of two integers");
  }
  absl::StatusOr<uint64_t> begin = NonNegativeInt(offs[0], "data_offsets[0]");
  if (!begin.ok()) return err.Tensor(name, begin.status().message());
  absl::StatusOr<uint64_t> end = NonNegativeInt(offs[1], "data_offsets[1]");
  if (!end.ok()) return err.Tensor(name, end.status().message());
  if (*begin > *end) {
    return err.Tensor(name,
                      absl::StrCat("data_offsets [", *begin, ", ", *end, "] begin is past end"));
  }
  t.begin = *begin;
  t.end = *end;

  const uint64_t elem = static_cast<uint64_t>(ElemSize(t.dtype));
  if (static_cast<uint64_t>(t.num_elements) > kInt64Max / elem) {
    return err.Tensor(name, absl::StrCat("byte size of ", ElemTypeName(t.dtype), " shape ",
                                         ShapeString(t.shape), " overflows int64"));
  }
  const uint64_t want = static_cast<uint64_t>(t.num_elements) * elem;
  if (t.end - t.begin != want) {
    return err.Tensor(name, absl::StrCat("data_offsets [", t.begin, ", ", t.end, "] hold ",
                                         t.end - t.begin, " bytes but ", ElemTypeName(t.dtype),
                                         " shape ", ShapeString(t.shape), " needs ", want));
  }
  return t;
}

absl::Status ParseMetadata(const HeaderErrors& err, const json& m,
                           std::map<std::string, std::string>* out) {
  if (!m.is_object()) return err.File("__metadata__ is not a JSON object");
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!it.value().is_string()) {
      return err.File(
          absl::StrCat("__metadata__ value of ", QuoteForMessage(it.key()), " is not a string"));
    }
    out->emplace_hint(out->end(), it.key(), it.value().template get<std::string>());
  }
  return absl::OkStatus();
}

// The sorted tensors must tile [0, data_size) exactly: the format has no padding between tensors,
// so a gap or trailing bytes means a truncated or corrupted header.
absl::Status CheckTiling(const HeaderErrors& err, const std::vector<HeaderTensor>& tensors,
                         uint64_t data_size) {
  uint64_t cursor = 0;
  const HeaderTensor* prev = nullptr;
  for (const HeaderTensor& t : tensors) {
    if (t.begin < cursor) {
      return err.Tensor(t.name,
                        absl::StrCat("data_offsets [", t.begin, ", ", t.end, "] overlap tensor \"",
                                     prev->name, "\" [", prev->begin, ", ", prev->end, "]"));
    }
    if (t.begin > cursor) {
      return err.Tensor(t.name, absl::StrCat("hole: data bytes [", cursor, ", ", t.begin,
                                             ") before it belong to no tensor"));
    }
    cursor = t.end;
    if (t.end > t.begin || prev == nullptr) prev = &t;
  }
  if (cursor != data_size) {
    return err.File(absl::StrCat("hole: data bytes [", cursor, ", ", data_size,
                                 ") at the end of the data region belong to no tensor"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<int64_t> CheckedNumElements(absl::Span<const int64_t> shape) {
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeString(shape), " has a negative dimension"));
    }
    if (__builtin_mul_overflow(n, shape[i], &n)) {
      return absl::InvalidArgumentError(
          absl::StrCat("element count of shape ", ShapeString(shape), " overflows int64"));
    }
  }
  return n;
}

// The layout of `file`; with `header_only`, `file` may end anywhere after the header (a dry run
// reads nothing else) and the data region is taken to be what the tensors declare.
static absl::StatusOr<SafetensorsLayout> ParseLayout(std::string_view label,
                                                     absl::Span<const uint8_t> file,
                                                     const SafetensorsLimits& limits,
                                                     bool header_only) {
  const HeaderErrors err(label);
  if (file.size() < 8) {
    return err.File(
        absl::StrCat("file is ", file.size(), " bytes, shorter than the 8-byte header length"));
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file[static_cast<size_t>(i)];
  if (n == 0) return err.File("header length is 0");
  if (n > limits.max_header_bytes) {
    return err.File(absl::StrCat("header length ", n, " exceeds the limit of ",
                                 limits.max_header_bytes, " bytes"));
  }
  if (n > file.size() - 8) {
    return err.File(
        absl::StrCat("header length ", n, " runs past the end of the ", file.size(), "-byte file"));
  }
  SafetensorsLayout layout;
  layout.header_size = n;
  layout.data_offset = 8 + n;
  layout.data_size = header_only ? 0 : file.size() - layout.data_offset;

  // Linear and depth-limited; duplicate keys (a repeated tensor name is corruption) are errors.
  absl::StatusOr<json> parsed = ParseJsonBounded(
      std::string_view(reinterpret_cast<const char*>(file.data()) + 8, n), limits.max_json_depth);
  if (!parsed.ok()) return err.File(absl::StrCat("header: ", parsed.status().message()));
  const json& header = *parsed;
  if (!header.is_object()) return err.File("header is not a JSON object");
  const size_t tensors = header.size() - (header.contains("__metadata__") ? 1 : 0);
  if (tensors > limits.max_tensors) {
    return err.File(absl::StrCat("header lists ", tensors, " tensors, over the limit of ",
                                 limits.max_tensors, " (max tensors per file)"));
  }
  layout.tensors.reserve(tensors);
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      RTNQ_RETURN_IF_ERROR(ParseMetadata(err, it.value(), &layout.metadata));
      continue;
    }
    if (name.size() > limits.max_name_bytes) {
      return err.Tensor(name, absl::StrCat("name length ", name.size(), " is over the limit of ",
                                           limits.max_name_bytes, " (max tensor name bytes)"));
    }
    RTNQ_ASSIGN_OR_RETURN(HeaderTensor t, ParseEntry(err, name, it.value()));
    if (header_only) {
      layout.data_size = std::max(layout.data_size, t.end);
    } else if (t.end > layout.data_size) {
      return err.Tensor(name,
                        absl::StrCat("data_offsets [", t.begin, ", ", t.end, "] run past the ",
                                     layout.data_size, "-byte data region"));
    }
    layout.tensors.push_back(std::move(t));
  }
  std::sort(layout.tensors.begin(), layout.tensors.end(),
            [](const HeaderTensor& a, const HeaderTensor& b) {
              return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
            });
  RTNQ_RETURN_IF_ERROR(CheckTiling(err, layout.tensors, layout.data_size));
  return layout;
}

absl::StatusOr<SafetensorsLayout> ParseSafetensorsLayout(std::string_view label,
                                                         absl::Span<const uint8_t> file,
                                                         const SafetensorsLimits& limits) {
  return ParseLayout(label, file, limits, /*header_only=*/false);
}

absl::StatusOr<SafetensorsLayout> ParseSafetensorsHeaderOnly(std::string_view label,
                                                             absl::Span<const uint8_t> head,
                                                             const SafetensorsLimits& limits) {
  return ParseLayout(label, head, limits, /*header_only=*/true);
}

absl::StatusOr<BuiltHeader> BuildSafetensorsHeader(
    const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& metadata) {
  BuiltHeader out;
  if (specs.size() > kMaxSafetensorsTensors) {
    return absl::InvalidArgumentError(absl::StrCat(specs.size(), " tensors are over the limit of ",
                                                   kMaxSafetensorsTensors,
                                                   " (max tensors per file)"));
  }
  json header = json::object();
  // Appended to ordered_map's vector directly: its operator[] scans for the key (quadratic).
  json::object_t::Container& items = *header.get_ptr<json::object_t*>();
  items.reserve(specs.size() + 1);
  if (!metadata.empty()) items.emplace_back("__metadata__", metadata);
  std::unordered_set<std::string_view> names;
  names.reserve(specs.size());
  for (const TensorSpec& s : specs) {
    auto bad = [&](absl::string_view rule) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor ", QuoteForMessage(s.name, kNameBytesInMessages), ": ", rule));
    };
    if (s.name.empty()) return bad("empty tensor name");
    if (s.name == "__metadata__") return bad("name is reserved for the header metadata");
    if (s.name.size() > kMaxTensorNameBytes) {
      return bad(absl::StrCat("name length ", s.name.size(), " is over the limit of ",
                              kMaxTensorNameBytes, " (max tensor name bytes)"));
    }
    if (!names.insert(s.name).second) return bad("duplicate tensor name");
    absl::StatusOr<int64_t> n = CheckedNumElements(s.shape);
    if (!n.ok()) return bad(n.status().message());
    const uint64_t elem = static_cast<uint64_t>(ElemSize(s.dtype));
    if (static_cast<uint64_t>(*n) > kInt64Max / elem ||
        static_cast<uint64_t>(*n) * elem > kInt64Max - out.data_size) {
      return bad("byte size overflows int64");
    }
    HeaderTensor t{s.name, s.dtype,       s.shape,
                   *n,     out.data_size, out.data_size + static_cast<uint64_t>(*n) * elem};
    out.data_size = t.end;
    items.emplace_back(s.name, json{{"dtype", ElemTypeName(s.dtype)},
                                    {"shape", s.shape},
                                    {"data_offsets", {t.begin, t.end}}});
    out.tensors.push_back(std::move(t));
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor name or metadata is not valid UTF-8: ", EscapeForMessage(e.what())));
  }
  // The official writer pads with spaces so the data region starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxSafetensorsHeaderSize) {
    return absl::InvalidArgumentError(absl::StrCat("header of ", text.size(),
                                                   " bytes exceeds the limit of ",
                                                   kMaxSafetensorsHeaderSize, " bytes"));
  }
  out.bytes.resize(8);
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.bytes[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  out.bytes += text;
  return out;
}

}  // namespace rtnq
