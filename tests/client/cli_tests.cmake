# The rtnq binary: its argument parsing (gtest) and the binary end to end as a user drives it,
# with real rtnq-server subprocesses and real files (cli_test.sh).
if(TARGET rtnq)
  add_executable(cli_args_test ${CMAKE_CURRENT_SOURCE_DIR}/cli_args_test.cc)
  target_link_libraries(cli_args_test PRIVATE rtnq_cli_flags rtnq_warnings GTest::gmock
                        GTest::gtest_main)
  gtest_discover_tests(cli_args_test DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300 LABELS client)

  add_test(NAME rtnq_cli
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli_test.sh $<TARGET_FILE:rtnq>
                   $<TARGET_FILE:rtnq-server>)
  set_tests_properties(rtnq_cli PROPERTIES TIMEOUT 300 LABELS client)
  if(RTNQ_SANITIZE)  # memory bounds are checked in ordinary builds only
    set_tests_properties(rtnq_cli PROPERTIES ENVIRONMENT RTNQ_SANITIZED=1)
  endif()

  # compressed-tensors and AWQ end to end; its numpy reader needs Debian's python3-numpy.
  add_test(NAME rtnq_formats_cli
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/formats_cli_test.sh $<TARGET_FILE:rtnq>
                   $<TARGET_FILE:rtnq-server>
                   ${PROJECT_SOURCE_DIR}/tests/core/layout_reader_test.py)
  set_tests_properties(rtnq_formats_cli PROPERTIES TIMEOUT 300 LABELS client)
  # MoE and FP8 checkpoints through the real binary, checked with numpy (Debian's
  # python3 and python3-numpy, scripts/setup-deps.sh).
  find_program(RTNQ_NUMPY_PYTHON NAMES python3 PATHS /usr/bin NO_DEFAULT_PATH)
  if(RTNQ_NUMPY_PYTHON)
    add_test(NAME rtnq_moe_fp8_cli
             COMMAND ${RTNQ_NUMPY_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/moe_fp8_cli_test.py
                     $<TARGET_FILE:rtnq>)
    set_tests_properties(rtnq_moe_fp8_cli PROPERTIES TIMEOUT 300 LABELS client)
  endif()
endif()
