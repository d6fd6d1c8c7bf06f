// Local stand-ins for Abseil's status macros, which Debian's abseil 20220623 does not ship.
// Prefixed so they cannot collide with the same-named macros of other libraries a user links
// (gRPC, TF, Arrow and others define RETURN_IF_ERROR / ASSIGN_OR_RETURN).
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RTNQ_STATUS_CONCAT_INNER_(a, b) a##b
#define RTNQ_STATUS_CONCAT_(a, b) RTNQ_STATUS_CONCAT_INNER_(a, b)

/// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define RTNQ_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::absl::Status rtnq_status_ = (expr);        \
    if (!rtnq_status_.ok()) return rtnq_status_; \
  } while (0)

/// Evaluates `rexpr` (an absl::StatusOr<T>); on error returns its status, else moves the value
/// into `lhs` (which may be a declaration such as `auto x`).
#define RTNQ_ASSIGN_OR_RETURN(lhs, rexpr) \
  RTNQ_ASSIGN_OR_RETURN_IMPL_(RTNQ_STATUS_CONCAT_(rtnq_statusor_, __LINE__), lhs, rexpr)

#define RTNQ_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                \
  if (!statusor.ok()) return statusor.status();           \
  lhs = std::move(statusor).value()
