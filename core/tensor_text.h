// How messages spell a tensor and its shape: one spelling, so errors read the same in every layer
// (tests and users match on them).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace rtnq {

/// A shape as "[2, 3]" ("[]" for a scalar).
inline std::string ShapeString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

/// The prefix of every error about one tensor: `tensor "<name>": `.
inline std::string TensorPrefix(std::string_view name) {
  return absl::StrCat("tensor \"", absl::string_view(name.data(), name.size()), "\": ");
}

/// A status of `code` whose message is TensorPrefix(name) + msg.
inline absl::Status TensorError(std::string_view name, absl::StatusCode code,
                                absl::string_view msg) {
  return absl::Status(code, absl::StrCat(TensorPrefix(name), msg));
}

/// `s` with its message prefixed by TensorPrefix(name); OK stays OK.
inline absl::Status WithTensorName(std::string_view name, const absl::Status& s) {
  return s.ok() ? s : TensorError(name, s.code(), s.message());
}

}  // namespace rtnq
