# rtnq plan (client/plan/): candidates, importance files, measurement, the exact solver, the
# plan's outputs and quantize --dry-run. rtnq_client_plan_remote measures on rtnq servers.
if(TARGET rtnq_client)
  add_library(rtnq_client_plan STATIC
    ${CMAKE_CURRENT_LIST_DIR}/candidates.cc
    ${CMAKE_CURRENT_LIST_DIR}/solver.cc)
  target_link_libraries(rtnq_client_plan
    PUBLIC rtnq_client rtnq_core nlohmann_json::nlohmann_json
    PRIVATE rtnq_warnings)
endif()
