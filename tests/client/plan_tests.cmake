# rtnq plan: the solver against brute force, candidates and importance files, planning end to
# end (predicted sizes against real quantize runs, dry runs), remote measurement.
if(TARGET rtnq_client_plan)
  foreach(t plan_solver_test plan_units_test plan_run_test)
    add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cc)
    target_link_libraries(${t} PRIVATE rtnq_client_plan rtnq_synth rtnq_warnings GTest::gmock
                          GTest::gtest_main)
    gtest_discover_tests(${t} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300 LABELS client)
  endforeach()
endif()

if(TARGET rtnq_client_plan_remote AND TARGET rtnq_server_testing)
  add_executable(plan_remote_test ${CMAKE_CURRENT_SOURCE_DIR}/plan_remote_test.cc)
  target_link_libraries(plan_remote_test PRIVATE rtnq_client_plan_remote rtnq_synth rtnq_server_testing
                        rtnq_warnings GTest::gmock GTest::gtest_main)
  gtest_discover_tests(plan_remote_test DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300 LABELS client)
endif()

if(TARGET rtnq AND TARGET rtnq-server)
  add_test(NAME rtnq_plan_cli
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/plan_cli_test.sh $<TARGET_FILE:rtnq>
                   $<TARGET_FILE:rtnq-server>)
  set_tests_properties(rtnq_plan_cli PROPERTIES TIMEOUT 300 LABELS client)
endif()
