#include "core/config/strict_json.h"

#include <cstdint>
#include <exception>
#include <functional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/config/input_limits.h"

namespace rtnq {
namespace {

using Json = nlohmann::ordered_json;
// ordered_map is a vector of pairs; its own insert scans for the key (quadratic per object), so
// the builder appends to the vector and finds duplicates with a hash set of indices.
using ObjectItems = Json::object_t::Container;

constexpr size_t kMaxPathBytes = 160;
constexpr size_t kMaxParserMessageBytes = 256;

struct KeyHash {
  const ObjectItems* items;
  size_t operator()(size_t i) const { return std::hash<std::string_view>{}((*items)[i].first); }
};
struct KeyEqual {
  const ObjectItems* items;
  bool operator()(size_t a, size_t b) const { return (*items)[a].first == (*items)[b].first; }
};

// nlohmann's SAX events -> an ordered_json, like its own DOM builder but with a depth limit,
// linear-time keys and bounded messages. Frames point at containers inside the tree being built;
// a parent is never appended to while a child is open, so the pointers stay valid.
class BoundedBuilder {
 public:
  explicit BoundedBuilder(int max_depth) : max_depth_(max_depth) {}

  bool null() { return Put(nullptr); }
  bool boolean(bool v) { return Put(v); }
  bool number_integer(Json::number_integer_t v) { return Put(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return Put(v); }
  bool number_float(Json::number_float_t v, const std::string& /*text*/) { return Put(v); }
  bool string(std::string& v) { return Put(std::move(v)); }
  bool binary(Json::binary_t& v) { return Put(Json::binary(std::move(v))); }
  bool start_object(size_t /*elements*/) { return Open(Json::object()); }
  bool start_array(size_t /*elements*/) { return Open(Json::array()); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }

  bool key(std::string& k) {
    Frame& f = frames_.back();
    ObjectItems& items = *f.items;
    items.emplace_back(std::move(k), nullptr);
    if (!f.keys.insert(items.size() - 1).second) {
      error_ = absl::StrCat("duplicate key ", QuoteForMessage(items.back().first));
      // The path of the enclosing object, without the key just added.
      const std::string path = Path(frames_.size() - 1);
      if (!path.empty()) absl::StrAppend(&error_, " in ", path);
      return false;
    }
    return true;
  }

  bool parse_error(size_t /*position*/, const std::string& /*last_token*/,
                   const nlohmann::detail::exception& e) {
    // nlohmann's message quotes the last token, which may be a long string with any bytes.
    const std::string_view what = e.what();
    error_ = absl::StrCat("invalid JSON: ", EscapeForMessage(what, kMaxParserMessageBytes));
    return false;
  }

  const std::string& error() const { return error_; }
  Json& root() { return root_; }

 private:
  using KeySet = std::unordered_set<size_t, KeyHash, KeyEqual>;
  struct Frame {
    Json* value;
    ObjectItems* items;  // objects only
    KeySet keys;         // indices into *items
  };

  // Where the next value goes: the root, the end of the open array, or the last key's slot.
  Json* Slot() {
    if (frames_.empty()) return &root_;
    Frame& f = frames_.back();
    if (f.items != nullptr) return &f.items->back().second;
    Json::array_t& a = *f.value->get_ptr<Json::array_t*>();
    a.emplace_back();
    return &a.back();
  }

  bool Put(Json v) {
    *Slot() = std::move(v);
    return true;
  }

  bool Open(Json container) {
    // The slot first, so the path below ends at the container being opened.
    Json* slot = Slot();
    if (static_cast<int>(frames_.size()) >= max_depth_) {
      error_ = absl::StrCat("JSON nested deeper than the limit of ", max_depth_, " levels");
      const std::string path = Path(frames_.size());
      if (!path.empty()) absl::StrAppend(&error_, " at ", path);
      return false;
    }
    *slot = std::move(container);
    ObjectItems* items = nullptr;
    if (slot->is_object()) items = slot->get_ptr<Json::object_t*>();
    frames_.push_back(Frame{slot, items, KeySet(0, KeyHash{items}, KeyEqual{items})});
    return true;
  }

  bool Close() {
    frames_.pop_back();
    return true;
  }

  // "a"."b"[3] for the first `levels` frames (each frame's current key or index), cut short.
  std::string Path(size_t levels) const {
    std::string out;
    for (size_t i = 0; i < levels && i < frames_.size(); ++i) {
      if (out.size() > kMaxPathBytes) {
        out += "...";
        break;
      }
      const Frame& f = frames_[i];
      if (f.items != nullptr) {
        if (f.items->empty()) break;
        if (!out.empty()) out += ".";
        out += QuoteForMessage(f.items->back().first);
      } else {
        const size_t n = f.value->size();
        if (n == 0) break;
        absl::StrAppend(&out, "[", n - 1, "]");
      }
    }
    return out;
  }

  int max_depth_;
  Json root_;
  std::vector<Frame> frames_;
  std::string error_;
};

template <typename J>
std::string Scalar(const J& v) {
  if (v.is_string()) {
    // Cut first: dumping a 16 MB string to show 64 bytes of it would be linear waste.
    const std::string& s = v.template get_ref<const std::string&>();
    return J(s.substr(0, 80)).dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
  }
  return v.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

template <typename J>
std::string Snippet(const J& v) {
  constexpr size_t kMax = 64;
  struct Open {
    const J* container;
    typename J::const_iterator next;
    bool first;
  };
  std::string out;
  std::vector<Open> stack;
  auto enter = [&](const J& x) {
    if (x.is_object() || x.is_array()) {
      out += x.is_object() ? '{' : '[';
      stack.push_back(Open{&x, x.cbegin(), true});
    } else {
      out += Scalar(x);
    }
  };
  enter(v);
  while (!stack.empty() && out.size() <= kMax) {
    Open& top = stack.back();
    if (top.next == top.container->cend()) {
      out += top.container->is_object() ? '}' : ']';
      stack.pop_back();
      continue;
    }
    if (!top.first) out += ',';
    top.first = false;
    if (top.container->is_object()) {
      out += Scalar(J(top.next.key()));
      out += ':';
    }
    const J& child = *top.next;
    ++top.next;
    enter(child);  // may grow the stack: `top` is not used after this
  }
  if (out.size() > kMax) out = out.substr(0, kMax - 3) + "...";
  return out;
}

}  // namespace

absl::StatusOr<nlohmann::ordered_json> ParseJsonBounded(std::string_view text, int max_depth) {
  try {
    BoundedBuilder builder(max_depth);
    if (!Json::sax_parse(text.begin(), text.end(), &builder)) {
      return absl::InvalidArgumentError(builder.error());
    }
    return std::move(builder.root());
  } catch (const std::exception& e) {  // allocation failure; nothing may cross our boundary
    return absl::ResourceExhaustedError(absl::StrCat("parsing JSON: ", e.what()));
  }
}

std::string JsonSnippet(const nlohmann::json& v) { return Snippet(v); }
std::string JsonSnippet(const nlohmann::ordered_json& v) { return Snippet(v); }

}  // namespace rtnq
