# Client library suites: unit tests of its pieces, RunQuantize end to end with the local
# backend, and local/remote byte parity against an in-process server.
foreach(t library_units_test quantize_run_test verify_test experts_test)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cc)
  target_link_libraries(${t} PRIVATE rtnq_client rtnq_synth rtnq_warnings GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${t} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300 LABELS client)
endforeach()

# RunQuantize and sessions against in-process servers: local/remote parity, and the scale cases
# (tensors beyond small budgets, many small tensors, retries mid-answer). They need the service.
if(RTNQ_BUILD_SERVER)
  foreach(t quantize_run_remote_test remote_scale_test)
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cc)
    target_link_libraries(${t} PRIVATE rtnq_client rtnq_synth rtnq_client_remote
                          rtnq_server_testing rtnq_warnings GTest::gmock GTest::gtest_main)
    gtest_discover_tests(${t} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300 LABELS client)
  endforeach()
endif()
