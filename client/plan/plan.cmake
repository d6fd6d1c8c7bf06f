# rtnq plan (client/plan/): candidates, importance files, measurement, the exact solver, the
# plan's outputs and quantize --dry-run. rtnq_client_plan_remote measures on rtnq servers.
add_library(rtnq_client_plan STATIC
  ${CMAKE_CURRENT_LIST_DIR}/candidates.cc
  ${CMAKE_CURRENT_LIST_DIR}/dry_run.cc
  ${CMAKE_CURRENT_LIST_DIR}/imatrix.cc
  ${CMAKE_CURRENT_LIST_DIR}/importance.cc
  ${CMAKE_CURRENT_LIST_DIR}/measure.cc
  ${CMAKE_CURRENT_LIST_DIR}/plan_report.cc
  ${CMAKE_CURRENT_LIST_DIR}/planner.cc
  ${CMAKE_CURRENT_LIST_DIR}/predict.cc
  ${CMAKE_CURRENT_LIST_DIR}/solver.cc)
target_link_libraries(rtnq_client_plan
  PUBLIC rtnq_client rtnq_core nlohmann_json::nlohmann_json
  PRIVATE rtnq_warnings)

# Remote measurement needs the gRPC remote backend (RTNQ_BUILD_SERVER).
if(TARGET rtnq_client_remote)
  add_library(rtnq_client_plan_remote STATIC ${CMAKE_CURRENT_LIST_DIR}/remote_measure.cc)
  target_link_libraries(rtnq_client_plan_remote
    PUBLIC rtnq_client_plan rtnq_client_remote
    PRIVATE rtnq_warnings)
endif()
