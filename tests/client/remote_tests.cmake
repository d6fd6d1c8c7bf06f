# Remote backend suites: real in-process servers on 127.0.0.1 (tests/server/harness.h).
foreach(t remote_backend_test remote_channel_test)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cc)
  target_link_libraries(${t} PRIVATE rtnq_client_remote rtnq_server_testing rtnq_warnings
                                     GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${t} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300 LABELS client)
endforeach()
