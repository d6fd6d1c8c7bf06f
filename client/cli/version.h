// The rtnq binary's version (the CMake project version, cmake/version.h.in).
#pragma once

#include "rtnq/version.h"  // RTNQ_VERSION, generated from project(VERSION)

namespace rtnq::client::cli {

inline constexpr char kVersion[] = RTNQ_VERSION;

}  // namespace rtnq::client::cli
