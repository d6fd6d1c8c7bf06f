// The rtnq binary's version (the CMake project version, set by client/cli.cmake).
#pragma once

#ifndef RTNQ_VERSION
#define RTNQ_VERSION "dev"
#endif

namespace rtnq::client::cli {

inline constexpr char kVersion[] = RTNQ_VERSION;

}  // namespace rtnq::client::cli
