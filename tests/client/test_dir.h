// A fresh, empty directory per test for the client library suites.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace rtnq::client::testing {

/// <TempDir>/rtnq_client_<pid>/<suite>.<test>, emptied.
inline std::string FreshTestDir() {
  namespace fs = std::filesystem;
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fs::path dir = fs::path(::testing::TempDir()) /
                       ("rtnq_client_" + std::to_string(::getpid())) /
                       (std::string(info->test_suite_name()) + "." + info->name());
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

}  // namespace rtnq::client::testing
